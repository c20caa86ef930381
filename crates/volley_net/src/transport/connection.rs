//! One peer connection driven through signaling, the same on both
//! platforms: offer/answer (the peer told `NewPeer` offers), remote
//! candidates held until the remote description is set, then trickled
//! candidates and the connection's health until it ends. The platform
//! builds the connection ([`Connection`]) and closes it afterwards.

use std::future::Future;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::{FutureExt, StreamExt};

use super::driven::Incoming;
use super::mesh::{Context, Role};
use crate::signal::PeerSignal;
use crate::stats::Link;
use crate::{Channel, PeerId};

/// Remote candidates kept while the remote description is not yet set.
const EARLY_CANDIDATES: usize = 64;

/// Why a negotiation ended when the session closed the connection (or
/// replaced it): not a failure to report.
const CLOSED_WHILE_NEGOTIATING: &str = "closed while negotiating";

/// How often the selected candidate pair is read again once the channels
/// are open: ICE may move to a better pair later (a relayed start, then a
/// direct pair), and a browser's stats can name no pair yet when the
/// channels open (seen on a loaded machine). One `getStats()` per peer
/// per period costs little.
const LINK_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// What a connection's event handlers tell its task.
pub(super) enum Health {
    /// One data channel opened.
    ChannelOpen,
    /// The connection is up (the selected pair can be read).
    Connected,
    /// The connection failed or closed, or a channel closed.
    Gone,
}

/// A platform's peer connection, as [`drive`] uses it. Errors are text:
/// they end the connection and are logged, nothing more.
pub(super) trait Connection {
    /// Its data channels, for the session.
    type Channels;

    /// Creates our offer (`offer`) or answer; returns its SDP.
    fn create(&self, offer: bool) -> impl Future<Output = Result<String, String>>;
    /// Sets our description.
    fn set_local(&self, offer: bool, sdp: String) -> impl Future<Output = Result<(), String>>;
    /// Sets the peer's description.
    fn set_remote(&self, offer: bool, sdp: String) -> impl Future<Output = Result<(), String>>;
    /// Adds a remote candidate signaled as JSON (`"null"` and garbage are
    /// ignored).
    fn add_candidate(&self, json: &str) -> impl Future<Output = ()>;
    /// Signals our candidates held until our description had gone (a
    /// native matchbox peer drops candidates that arrive before it).
    fn release_candidates(&self);
    /// The data channels, for `Up`.
    fn channels(&self) -> Self::Channels;
    /// The selected candidate pair, once there is one.
    fn link(&self) -> impl Future<Output = Option<Link>>;
}

/// Negotiates `connection` and follows it until it ends: `remote` carries
/// the peer's signals (its end closes the connection), `health` the
/// connection's events. Reports it up (and its path) to the session, or
/// why it never came up ([`Incoming::Failed`]: ICE failed, or nothing
/// within [`IceTiming::setup_timeout`](crate::IceTiming)); the caller
/// closes it and reports it down. Returns whether it came up.
pub(super) async fn drive<C: Connection>(
    connection: &C,
    peer: PeerId,
    role: Role,
    remote: &mut UnboundedReceiver<PeerSignal>,
    health: &mut UnboundedReceiver<Health>,
    cx: &Context<C::Channels>,
) -> bool {
    let fail = |why: String| {
        if cx.quiet {
            tracing::debug!("no new connection to {peer} yet: {why}");
            return;
        }
        tracing::info!("no connection to {peer}: {why}");
        let _ = cx.incoming.unbounded_send(Incoming::Failed(peer, why));
    };
    let mut deadline = futures_timer::Delay::new(cx.config.timing.setup_timeout).fuse();
    let negotiated = futures_util::select! {
        negotiated = negotiate(connection, peer, role, remote, cx).fuse() => negotiated,
        () = deadline => Err(format!("not negotiated within {:?}", cx.config.timing.setup_timeout)),
    };
    match negotiated {
        Ok(()) => {}
        // Closed by the session (or replaced by a new connection): no news.
        Err(why) if why == CLOSED_WHILE_NEGOTIATING => return false,
        Err(why) => {
            fail(why);
            return false;
        }
    }
    // Reported every time (the session keeps the latest): a report that
    // reached the session before it knew the peer is made good later.
    let report_link = async || {
        if let Some(link) = connection.link().await {
            let _ = cx.incoming.unbounded_send(Incoming::Link(peer, link));
        }
    };
    let mut refresh = futures_util::future::Fuse::terminated();
    let mut open = 0;
    loop {
        futures_util::select! {
            signal = remote.next() => match signal {
                Some(PeerSignal::IceCandidate(json)) => connection.add_candidate(&json).await,
                Some(_) => tracing::debug!("{peer} sent a second description; ignored"),
                None => return open == Channel::COUNT, // closed by the session or the peer left
            },
            news = health.next() => match news {
                Some(Health::ChannelOpen) => {
                    open += 1;
                    if open == Channel::COUNT {
                        let up = Incoming::Up(peer, connection.channels());
                        let _ = cx.incoming.unbounded_send(up);
                        report_link().await;
                        refresh = futures_timer::Delay::new(LINK_REFRESH).fuse();
                    }
                }
                // ICE connects before the channels open: until they are,
                // the session does not know the peer, and the pair is
                // reported with `Up` instead.
                Some(Health::Connected) if open == Channel::COUNT => {
                    report_link().await;
                }
                Some(Health::Connected) => {}
                Some(Health::Gone) | None if open < Channel::COUNT => {
                    fail(format!("ICE found no path: {}", hint(&cx.config)));
                    return false;
                }
                Some(Health::Gone) | None => return true,
            },
            () = refresh => {
                report_link().await;
                refresh = futures_timer::Delay::new(LINK_REFRESH).fuse();
            },
            () = deadline => if open < Channel::COUNT {
                let after = cx.config.timing.setup_timeout;
                fail(format!("not connected within {after:?}: {}", hint(&cx.config)));
                return false;
            },
        }
    }
}

/// What to tell a game whose connection found no path.
fn hint(config: &crate::IceConfig) -> &'static str {
    if config.has_relay() {
        "not even through the TURN relay (is it reachable, are its credentials valid?)"
    } else {
        "both ends may be behind NATs that need a TURN relay, and none is configured"
    }
}

/// Offer/answer; remote candidates that come early are held until the
/// remote description is set.
async fn negotiate<C: Connection>(
    connection: &C,
    peer: PeerId,
    role: Role,
    remote: &mut UnboundedReceiver<PeerSignal>,
    cx: &Context<C::Channels>,
) -> Result<(), String> {
    let send = |signal| {
        cx.signals
            .unbounded_send((peer, signal))
            .map_err(|_| "signaling is gone".to_string())
    };
    let mut early = Vec::new();
    if role == Role::Offerer {
        let sdp = connection.create(true).await?;
        connection.set_local(true, sdp.clone()).await?;
        send(PeerSignal::Offer(sdp))?;
        connection.release_candidates();
    }
    loop {
        match remote.next().await {
            Some(PeerSignal::IceCandidate(json)) => {
                if early.len() < EARLY_CANDIDATES {
                    early.push(json);
                }
            }
            Some(PeerSignal::Offer(sdp)) if role == Role::Answerer => {
                connection.set_remote(true, sdp).await?;
                let sdp = connection.create(false).await?;
                // The answer leaves first: the peer can start meanwhile.
                send(PeerSignal::Answer(sdp.clone()))?;
                connection.set_local(false, sdp).await?;
                connection.release_candidates();
                break;
            }
            Some(PeerSignal::Answer(sdp)) if role == Role::Offerer => {
                connection.set_remote(false, sdp).await?;
                break;
            }
            Some(other) => tracing::debug!("{peer}: unexpected {other:?} while negotiating"),
            None => return Err(CLOSED_WHILE_NEGOTIATING.into()),
        }
    }
    for json in early {
        connection.add_candidate(&json).await;
    }
    Ok(())
}
