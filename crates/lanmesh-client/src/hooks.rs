//! Lifecycle hooks: a handler the application writes once, driven by [`Peer::run`].
//!
//! This is tinyproto's `pre_loop` / `transmission_received` / `post_loop` done over the
//! [`Peer`] handle instead of a thread per connection:
//!
//! 1. [`Hooks::on_join`] once, with the peer already in the mesh (the current members
//!    are in [`Peer::peers`]).
//! 2. Then, in the order they happen: [`Hooks::on_message`] for each message,
//!    [`Hooks::on_request`] for each request (its return value is the reply),
//!    [`Hooks::on_peer_joined`] / [`Hooks::on_peer_left`] for membership changes and
//!    [`Hooks::on_status`] when the connection is lost and found again.
//! 3. [`Hooks::on_leave`] once the connection is closed for good (by [`Peer::close`],
//!    [`Peer::terminate`], the router, or reconnection being off) and every message that
//!    arrived before has been handed to `on_message`. Then `run` returns the handler.
//!
//! Hooks run one at a time on the task that awaits `run`, so they may hold `&mut self`
//! state without locks and may await anything, including sends on the same peer. A
//! membership event that arrives before a message is handled before it.
//!
//! Under the hood, `run` turns on [`Peer::queue_requests`] and follows
//! [`Peer::peer_events`] and [`Peer::watch_status`]; those are public for applications
//! that prefer a loop of their own.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use lanmesh_proto::{Name, PeerInfo};
use tokio::sync::broadcast;
use tracing::debug;

use lanmesh_core::{Message, PeerEvent, Status};

use crate::peer::Peer;

/// How long `run` waits, after the inbox closed, for the status to say `Closed`.
const CLOSED_GRACE: Duration = Duration::from_secs(1);

/// What a peer does at each point of its life. Every method has an empty default, so an
/// implementation names only the ones it needs; implement them as `async fn`.
///
/// ```no_run
/// use lanmesh_client::{Hooks, Message, Peer};
///
/// struct Echo;
///
/// impl Hooks for Echo {
///     async fn on_message(&mut self, peer: &Peer, msg: Message) {
///         let _ = peer.send(msg.from.as_str(), msg.data).await;
///     }
///
///     async fn on_request(&mut self, _: &Peer, req: Message) -> Option<bytes::Bytes> {
///         Some(req.data)
///     }
/// }
///
/// # async fn demo() -> Result<(), lanmesh_client::ClientError> {
/// let peer = Peer::builder("echo").router("127.0.0.1:7400").connect().await?;
/// peer.run(Echo).await; // until the connection is closed
/// # Ok(()) }
/// ```
pub trait Hooks: Send {
    /// Once, first: the peer is in the mesh.
    fn on_join(&mut self, peer: &Peer) -> impl Future<Output = ()> + Send {
        let _ = peer;
        async {}
    }

    /// A message arrived (tinyproto's `transmission_received`).
    fn on_message(&mut self, peer: &Peer, msg: Message) -> impl Future<Output = ()> + Send {
        let _ = (peer, msg);
        async {}
    }

    /// A request arrived: return the reply's data, or `None` to tell the requester that
    /// this peer has no answer (it gets `ClientError::NoResponder`). Requesters wait at
    /// most their own timeout, so answer promptly.
    fn on_request(
        &mut self,
        peer: &Peer,
        request: Message,
    ) -> impl Future<Output = Option<Bytes>> + Send {
        let _ = (peer, request);
        async { None }
    }

    /// Another peer joined the mesh.
    fn on_peer_joined(&mut self, peer: &Peer, info: PeerInfo) -> impl Future<Output = ()> + Send {
        let _ = (peer, info);
        async {}
    }

    /// Another peer left the mesh.
    fn on_peer_left(&mut self, peer: &Peer, name: Name) -> impl Future<Output = ()> + Send {
        let _ = (peer, name);
        async {}
    }

    /// The connection changed state: lost (`Reconnecting`), back (`Connected`), or
    /// `Closed` (always reported, just before [`Hooks::on_leave`]).
    fn on_status(&mut self, peer: &Peer, status: Status) -> impl Future<Output = ()> + Send {
        let _ = (peer, status);
        async {}
    }

    /// Once, last: the connection is closed for good, for `reason`.
    fn on_leave(&mut self, peer: &Peer, reason: &str) -> impl Future<Output = ()> + Send {
        let _ = (peer, reason);
        async {}
    }
}

impl Peer {
    /// Drives `hooks` until the connection is closed for good, then returns them (with
    /// whatever state they gathered). See the [`Hooks`] trait for the order of calls.
    ///
    /// While it runs, requests go to [`Hooks::on_request`] unless a handler was set with
    /// [`Peer::respond`], which keeps precedence.
    pub async fn run<H: Hooks>(&self, mut hooks: H) -> H {
        let mut events = self.peer_events();
        let mut status = self.watch_status();
        status.borrow_and_update();
        self.queue_requests(true);
        let mut known: BTreeSet<Name> = self.peers().into_iter().map(|p| p.name).collect();
        let mut events_open = true;
        let mut status_open = true;
        let mut closed_told = false;
        hooks.on_join(self).await;
        let reason = loop {
            tokio::select! {
                // Membership first: a peer's join is handled before its first message.
                biased;
                event = events.recv(), if events_open => match event {
                    Ok(PeerEvent::Joined(info)) => {
                        if known.insert(info.name.clone()) {
                            hooks.on_peer_joined(self, info).await;
                        }
                    }
                    Ok(PeerEvent::Left(name)) => {
                        if known.remove(&name) {
                            hooks.on_peer_left(self, name).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        debug!(missed, "membership events missed; comparing member lists");
                        self.catch_up(&mut hooks, &mut known).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => events_open = false,
                },
                changed = status.changed(), if status_open => match changed {
                    Ok(()) => {
                        let now = status.borrow_and_update().clone();
                        closed_told |= matches!(now, Status::Closed { .. });
                        hooks.on_status(self, now).await;
                    }
                    Err(_) => status_open = false,
                },
                msg = self.endpoint.inbox.next() => match msg {
                    Ok(m) if m.is_request() => {
                        let answer = hooks.on_request(self, m.clone()).await;
                        let sent = match answer {
                            Some(data) => self.reply(&m, data).await.map(drop),
                            None => self.decline(&m).await,
                        };
                        if let Err(e) = sent {
                            debug!(to = %m.from, error = %e, "could not answer a request");
                        }
                    }
                    Ok(m) => hooks.on_message(self, m).await,
                    Err(reason) => break reason,
                },
            }
        };
        self.queue_requests(false);
        if !closed_told {
            // The inbox closes a moment before the status says so (on the actor's thread,
            // which may not be ours): wait for it, briefly, so `on_status(Closed)` always
            // comes before `on_leave`.
            let closed = status.wait_for(|s| matches!(s, Status::Closed { .. }));
            let now = tokio::time::timeout(CLOSED_GRACE, closed)
                .await
                .ok()
                .and_then(Result::ok)
                .map(|now| now.clone());
            if let Some(now) = now {
                hooks.on_status(self, now).await;
            }
        }
        hooks.on_leave(self, &reason).await;
        hooks
    }

    /// After missed events: report the difference between what the hooks were told and
    /// the member list now.
    async fn catch_up<H: Hooks>(&self, hooks: &mut H, known: &mut BTreeSet<Name>) {
        let now = self.peers();
        let names: BTreeSet<Name> = now.iter().map(|p| p.name.clone()).collect();
        let gone: Vec<Name> = known.difference(&names).cloned().collect();
        for name in gone {
            known.remove(&name);
            hooks.on_peer_left(self, name).await;
        }
        for info in now {
            if known.insert(info.name.clone()) {
                hooks.on_peer_joined(self, info).await;
            }
        }
    }

    /// Membership changes from now on. A receiver that falls more than 256 events behind
    /// gets `Lagged` and should read [`Peer::peers`] instead.
    pub fn peer_events(&self) -> broadcast::Receiver<PeerEvent> {
        self.endpoint.peer_events()
    }

    /// `(peer, direct)` from now on, each time messages to a peer move onto a direct link
    /// (`true`) or back to the router (`false`); [`Peer::is_direct`] says how it stands.
    pub fn path_events(&self) -> broadcast::Receiver<(Name, bool)> {
        self.endpoint.path_events()
    }
}
