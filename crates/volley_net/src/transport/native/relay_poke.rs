//! Relayed packets leave at once: a workaround for webrtc-rs 0.21.1.
//!
//! Its driver loop flushes the TURN client's outgoing queue before it moves
//! the connection's new packets into that queue (`poll_writes`: step 1.b
//! before 1.c), so a packet through our relay candidate waits for the
//! driver's next wake: a timer tens of milliseconds later, or the ICE
//! agent's ticks during set-up. Measured on loopback (the datapath bench's
//! relay section): connect 2.4 s and RTT 44 ms through a relay.
//!
//! [`RelayPoke`] wakes the driver again shortly after anything that may
//! have queued such a packet: every [`SETUP_EVERY`] while the connection
//! sets up (only when TURN servers are configured); once the selected pair
//! uses our relay candidate, [`AFTER_TRAFFIC`] after each send or receive,
//! and every [`HEARTBEAT`] for what the driver's own timers queue
//! (retransmissions, consent checks, TURN refreshes). A connection that
//! selected a direct pair stops it.
//!
//! The wakes after traffic must land after the driver's loop pass that
//! queued the packet (an earlier one is merged into the wake that started
//! it), a fraction of a millisecond later: finer than async-io's timers, so
//! one thread of the process sleeps until each is due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use smol::Timer;

use super::now_or_block;
use super::peer::Waker;

/// Wakes while the connection sets up.
pub(super) const SETUP_EVERY: Duration = Duration::from_millis(1);
/// After traffic: the first wake, when the driver has usually queued the
/// packet, and a second in case it had not.
pub(super) const AFTER_TRAFFIC: [Duration; 2] =
    [Duration::from_micros(150), Duration::from_micros(1500)];
/// Wakes when relayed and idle.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(50);

const SETUP: u8 = 0;
const RELAYED: u8 = 1;
const DIRECT: u8 = 2;

/// One connection's extra driver wakes (see the module docs).
pub(super) struct RelayPoke {
    state: AtomicU8,
    /// Wakes after traffic are scheduled (cleared by the first).
    armed: AtomicBool,
    waker: Arc<Waker>,
}

impl RelayPoke {
    /// Starts waking `waker`'s connection; setup and heartbeat wakes stop
    /// with the returned task.
    pub(super) fn start(waker: Arc<Waker>) -> (Arc<RelayPoke>, smol::Task<()>) {
        let poke = Arc::new(RelayPoke {
            state: AtomicU8::new(SETUP),
            armed: AtomicBool::new(false),
            waker,
        });
        let task = smol::spawn(run(Arc::downgrade(&poke)));
        (poke, task)
    }

    /// Something was sent or received: wake the driver after it.
    pub(super) fn traffic(self: &Arc<Self>) {
        if self.state.load(Ordering::Relaxed) == RELAYED && !self.armed.swap(true, Ordering::AcqRel)
        {
            let now = Instant::now();
            for (i, after) in AFTER_TRAFFIC.into_iter().enumerate() {
                schedule(Due {
                    at: now + after,
                    first: i == 0,
                    poke: Arc::downgrade(self),
                });
            }
        }
    }

    /// The selected pair is known: keep waking through our relay, or stop.
    pub(super) fn selected(&self, through_our_relay: bool) {
        let state = if through_our_relay { RELAYED } else { DIRECT };
        self.state.store(state, Ordering::Relaxed);
    }
}

/// Setup and heartbeat wakes, until the connection is direct or gone.
async fn run(poke: Weak<RelayPoke>) {
    loop {
        let Some(state) = poke.upgrade().map(|p| p.state.load(Ordering::Relaxed)) else {
            return;
        };
        let every = match state {
            SETUP => SETUP_EVERY,
            RELAYED => HEARTBEAT,
            _ => return,
        };
        Timer::after(every).await;
        let Some(waker) = poke.upgrade().map(|p| p.waker.clone()) else {
            return;
        };
        waker.wake().await;
    }
}

/// A wake due at `at`.
struct Due {
    at: Instant,
    /// The first after traffic: re-arms the connection.
    first: bool,
    poke: Weak<RelayPoke>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Hands `due` to the wake thread (started at the first call). Without it
/// (it could not be started) the heartbeat still flushes, only later.
fn schedule(due: Due) {
    static THREAD: OnceLock<Option<Mutex<mpsc::Sender<Due>>>> = OnceLock::new();
    let sender = THREAD.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("volley-relay-wake".into())
            .spawn(move || wake_thread(&rx))
            .ok()
            .map(|_| Mutex::new(tx))
    });
    if let Some(sender) = sender {
        let sender = sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = sender.send(due);
    }
}

/// Sleeps until the next wake is due, wakes that connection's driver.
fn wake_thread(scheduled: &mpsc::Receiver<Due>) {
    let mut pending: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    loop {
        let next = match pending.peek() {
            None => scheduled.recv().map_err(|_| ()),
            Some(Reverse(due)) => {
                let wait = due.at.saturating_duration_since(Instant::now());
                match scheduled.recv_timeout(wait) {
                    Ok(due) => Ok(due),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        fire(&mut pending);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                }
            }
        };
        match next {
            Ok(due) => pending.push(Reverse(due)),
            Err(()) => return,
        }
        fire(&mut pending);
    }
}

/// Wakes every connection whose wake is due.
fn fire(pending: &mut BinaryHeap<Reverse<Due>>) {
    let now = Instant::now();
    while pending.peek().is_some_and(|Reverse(due)| due.at <= now) {
        let Some(Reverse(due)) = pending.pop() else {
            break;
        };
        if let Some(poke) = due.poke.upgrade() {
            if due.first {
                poke.armed.store(false, Ordering::Release);
            }
            now_or_block(poke.waker.wake());
        }
    }
}
