//! Spectators: peers that watch a room's match without a seat in it.
//!
//! A spectator is fed the match by exactly one peer, its *feeder*: a
//! member whose connection is up, or another spectator that relays. Each
//! peer feeds at most `watch_fanout` spectators
//! ([`LobbyConfig`](super::LobbyConfig)), so what spectators cost a player
//! stays bounded however many watch: they hang in a tree rooted at the
//! members, filled breadth-first (members feeding fewest first, then
//! spectators in join order).
//!
//! A spectator is no member: it takes no seat, never seals or reopens a
//! group, and only its feeder (told `NewPeer`, so it offers as matchbox
//! peers do) and its own spectators hear of it; signals follow the tree's
//! edges only. A feeder that goes (or whose connection drops, its seat
//! held) leaves its spectators to be fed anew, never by one of their own
//! descendants; one with no possible feeder waits until there is one.
//! When the room's last member leaves, its spectators are closed
//! ([`Refusal::MatchOver`]).

use std::collections::HashMap;

use super::{Command, Lobby, PeerId, Room, RoomKey, RoomRequest, ServerMessage, Watch, present};
use crate::refusal::Refusal;

/// A room's spectators, in join order, each with its feeder (`None` while
/// it waits for one). A few dozen at most (`max_spectators`): scans are
/// cheaper than indexes to keep in step.
#[derive(Debug, Default)]
pub(super) struct Audience {
    pub(super) fed: Vec<(PeerId, Option<PeerId>)>,
}

impl Audience {
    pub(super) fn len(&self) -> usize {
        self.fed.len()
    }

    /// The spectators, in join order.
    pub(super) fn spectators(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.fed.iter().map(|(s, _)| *s)
    }

    /// `Some(feeder)` for a spectator of this room (`Some(None)` while it waits).
    fn feeder(&self, spectator: PeerId) -> Option<Option<PeerId>> {
        self.fed
            .iter()
            .find(|(s, _)| *s == spectator)
            .map(|(_, f)| *f)
    }

    /// Whether a spectator waits for a feeder.
    fn waiting(&self) -> bool {
        self.fed.iter().any(|(_, f)| f.is_none())
    }

    /// How many spectators `peer` feeds.
    fn load(&self, peer: PeerId) -> usize {
        self.fed.iter().filter(|(_, f)| *f == Some(peer)).count()
    }

    /// Which spectators the match reaches: their chain of feeders ends at
    /// a present member.
    fn reached(&self, present: &[PeerId]) -> Vec<bool> {
        let index: HashMap<PeerId, usize> = self
            .fed
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (*s, i))
            .collect();
        let mut known: Vec<Option<bool>> = vec![None; self.fed.len()];
        for start in 0..self.fed.len() {
            let mut chain = Vec::new();
            let mut at = start;
            let reached = loop {
                if let Some(reached) = known[at] {
                    break reached;
                }
                // Marked on the way up, so a cycle (never built) ends the walk.
                known[at] = Some(false);
                chain.push(at);
                match self.fed[at].1 {
                    Some(f) if present.contains(&f) => break true,
                    Some(f) => match index.get(&f) {
                        Some(&up) => at = up,
                        None => break false,
                    },
                    None => break false,
                }
            };
            for i in chain {
                known[i] = Some(reached);
            }
        }
        known.into_iter().map(|k| k == Some(true)).collect()
    }

    /// The peer a waiting spectator gets: the present member feeding
    /// fewest (the first in join order among equals), else the first
    /// spectator in join order that the match reaches, with a free slot.
    /// The waiting spectator and its descendants are not reached, so
    /// none of them is ever chosen: no cycles.
    fn choose(&self, present: &[PeerId], fanout: usize) -> Option<PeerId> {
        let member = present
            .iter()
            .map(|&m| (self.load(m), m))
            .filter(|(load, _)| *load < fanout)
            .min_by_key(|(load, _)| *load);
        if let Some((_, member)) = member {
            return Some(member);
        }
        let reached = self.reached(present);
        self.fed
            .iter()
            .zip(reached)
            .find(|((s, _), reached)| *reached && self.load(*s) < fanout)
            .map(|((s, _), _)| *s)
    }

    /// Feeds waiting spectators, in join order, while there is a feeder:
    /// each feeder hears `NewPeer` and offers. Any waiting spectator takes
    /// the same feeders (none reaches the match), so the first one that
    /// finds none ends the round.
    fn feed(&mut self, present: &[PeerId], fanout: usize, out: &mut Vec<Command>) {
        while let Some(i) = self.fed.iter().position(|(_, f)| f.is_none()) {
            let Some(feeder) = self.choose(present, fanout) else {
                return;
            };
            self.fed[i].1 = Some(feeder);
            out.push(Command::Send {
                to: vec![feeder],
                message: ServerMessage::NewPeer(self.fed[i].0),
            });
        }
    }

    /// `feeder` feeds nobody any more: its spectators hear it left and wait.
    fn orphan(&mut self, feeder: PeerId, out: &mut Vec<Command>) {
        let mut children = Vec::new();
        for (spectator, fed_by) in &mut self.fed {
            if *fed_by == Some(feeder) {
                *fed_by = None;
                children.push(*spectator);
            }
        }
        if !children.is_empty() {
            out.push(Command::Send {
                to: children,
                message: ServerMessage::PeerLeft(feeder),
            });
        }
    }
}

impl Lobby {
    /// Spectators watching, waiting ones included.
    pub fn spectator_count(&self) -> usize {
        self.spectators.len()
    }

    /// A spectator's join: it learns its id, then its feeder hears of it
    /// (or, with none possible now, it waits for one).
    pub(super) fn spectate(
        &mut self,
        peer: PeerId,
        request: &RoomRequest,
        watch: Watch,
        out: &mut Vec<Command>,
    ) {
        let key = match self.watchable(peer, request, watch) {
            Ok(key) => key,
            Err(reason) => return out.push(Command::Close { peer, reason }),
        };
        let Some(room) = self.rooms.get_mut(&key) else {
            return; // unreachable: `watchable` found it
        };
        out.push(Command::Send {
            to: vec![peer],
            message: ServerMessage::IdAssigned(peer),
        });
        room.audience.fed.push((peer, None));
        self.spectators.insert(peer, key);
        self.feed(key, out);
    }

    /// The room a spectator's request names, or why it cannot watch it.
    /// There must be a match to watch: a named room with a member present,
    /// or a `?next=N` group in play (sealed). A spectator has no seat to
    /// resume.
    fn watchable(
        &self,
        peer: PeerId,
        request: &RoomRequest,
        watch: Watch,
    ) -> Result<RoomKey, Refusal> {
        if self.peers.contains_key(&peer) || self.spectators.contains_key(&peer) {
            return Err(Refusal::DuplicatePeer);
        }
        let key = match (watch.group, request.next, request.resume) {
            (None, None, None) => self.named.get(&request.name),
            (Some(group), Some(_), None) => self.groups.get(&group),
            (None, Some(_), None) => self.oldest_in_play(request),
            _ => None,
        };
        let Some((&key, room)) = key.and_then(|key| Some((key, self.rooms.get(key)?))) else {
            return Err(Refusal::NothingToWatch);
        };
        // A group by its id, under the name and size the URL says.
        if room.name != request.name || room.next != request.next || !self.in_play(room) {
            return Err(Refusal::NothingToWatch);
        }
        let max = self.config.max_spectators;
        if room.audience.len() >= max {
            return Err(Refusal::TooManySpectators { max });
        }
        Ok(key)
    }

    /// The oldest `?next=N` group in play under the request's name and
    /// size (a watch link that names no group: "whatever is on"). A scan
    /// of the groups, on a spectator's join only (joins are rate-limited).
    fn oldest_in_play(&self, request: &RoomRequest) -> Option<&RoomKey> {
        (self.groups.values())
            .filter(|key| {
                self.rooms.get(key).is_some_and(|room| {
                    room.name == request.name && room.next == request.next && self.in_play(room)
                })
            })
            .min()
    }

    /// Whether `room` has a match to watch: a member present in a named
    /// room, a `?next=N` group sealed (it may be all away for a while).
    fn in_play(&self, room: &Room) -> bool {
        match room.next {
            None => room.members.iter().any(|m| !self.away.contains_key(m)),
            Some(_) => room.sealed,
        }
    }

    /// What to put in a URL to watch `room`, if it is in play.
    pub(super) fn watch_link(&self, room: &Room) -> Option<String> {
        if !self.in_play(room) {
            return None;
        }
        match (room.next, room.group) {
            (None, _) => Some(format!("{}?spectate", room.name)),
            (Some(n), Some(group)) => Some(format!("{}?next={n}&spectate={group}", room.name)),
            (Some(_), None) => None, // unreachable: every group has an id
        }
    }

    /// A spectator leaves (or is lost: it has no seat to hold): its feeder
    /// hears it left, its own spectators are fed anew.
    pub(super) fn unwatch(&mut self, peer: PeerId, out: &mut Vec<Command>) {
        let Some(key) = self.spectators.remove(&peer) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&key) else {
            return;
        };
        let Some(i) = room.audience.fed.iter().position(|(s, _)| *s == peer) else {
            return;
        };
        if let (_, Some(feeder)) = room.audience.fed.remove(i) {
            out.push(Command::Send {
                to: vec![feeder],
                message: ServerMessage::PeerLeft(peer),
            });
        }
        self.feeder_lost(key, peer, out);
    }

    /// `peer` (a member gone or away, a spectator gone) feeds nobody in
    /// room `key` any more: its spectators are fed anew where possible.
    pub(super) fn feeder_lost(&mut self, key: RoomKey, peer: PeerId, out: &mut Vec<Command>) {
        if let Some(room) = self.rooms.get_mut(&key) {
            room.audience.orphan(peer, out);
        }
        self.feed(key, out);
    }

    /// Feeds room `key`'s waiting spectators, if any can be (after every
    /// member's join: nothing is allocated when none waits).
    pub(super) fn feed(&mut self, key: RoomKey, out: &mut Vec<Command>) {
        let fanout = self.config.watch_fanout.max(1);
        let Some(room) = self.rooms.get_mut(&key).filter(|r| r.audience.waiting()) else {
            return;
        };
        let present = present(&room.members, &self.away);
        room.audience.feed(&present, fanout, out);
    }

    /// Whether `feeder` feeds `spectator` (the only signals a spectator
    /// sends or gets).
    pub(super) fn feeds(&self, feeder: PeerId, spectator: PeerId) -> bool {
        let fed_by = self
            .spectators
            .get(&spectator)
            .and_then(|key| self.rooms.get(key))
            .and_then(|room| room.audience.feeder(spectator));
        fed_by == Some(Some(feeder)) && !self.away.contains_key(&feeder)
    }
}
