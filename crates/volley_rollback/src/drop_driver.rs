//! The thin driver around [`Drops`] that bevy_volley and the harness share:
//! what ggrs has of a dropped player comes from the [`Pipe`]'s mirror,
//! relayed inputs go into the pipe, agreed drops into the ggrs session.

use std::hash::Hash;

use ggrs::{Config, P2PSession};

use crate::drops::{Action, DropNotice, Drops, MAX_RELAY_INPUTS};
use crate::mirror::NULL_FRAME;
use crate::pipe::Pipe;

impl Drops {
    /// [`Drops::drop_player`] for the player at `addr`, with what ggrs has
    /// of its inputs.
    pub fn drop_from_pipe<A: Clone + Eq + Hash>(
        &mut self,
        player: usize,
        addr: &A,
        pipe: &Pipe<A>,
        now_ms: u64,
    ) -> Option<DropNotice> {
        let (last, recent) = pipe.recent_inputs(addr, MAX_RELAY_INPUTS);
        self.drop_player(player, last, recent, now_ms)
    }

    /// [`Drops::poll`], carried out: relayed inputs go into `pipe`, agreed
    /// drops into `session`. `addrs` are the players' addresses by handle.
    /// Returns the players dropped in ggrs now, with their last frame.
    pub fn drive<T: Config>(
        &mut self,
        session: &mut P2PSession<T>,
        pipe: &Pipe<T::Address>,
        addrs: &[T::Address],
        now_ms: u64,
    ) -> Vec<(usize, i32)> {
        let last_of = |handle: usize| addrs.get(handle).map_or(NULL_FRAME, |a| pipe.last_input(a));
        let mut dropped = Vec::new();
        for action in self.poll(session.current_frame(), now_ms, last_of) {
            match action {
                Action::Relay { player, inputs } => {
                    if let Some(addr) = addrs.get(player) {
                        pipe.relay(addr, &inputs, addrs.len());
                    }
                }
                Action::Disconnect { player, last } => {
                    // An error: ggrs' own (backstop) timeout dropped it already.
                    if session.disconnect_player(player).is_ok() {
                        dropped.push((player, last));
                    }
                }
            }
        }
        dropped
    }
}
