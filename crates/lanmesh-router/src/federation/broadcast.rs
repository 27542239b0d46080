//! Broadcasts across routers: one NATS message per broadcast, not one per remote peer.
//!
//! 1. A local member broadcasts: its session hands the broadcast to each local member and
//!    once to the routing table's broadcast route (see `RoutingTable::broadcast`), which
//!    exists while other routers have members.
//! 2. The driver empties that route's inbox onto `lanmesh.<mesh>.all.<this router>`
//!    ([`publish`]); NATS hands the message to every router reading
//!    `lanmesh.<mesh>.all.*`.
//! 3. Each other router ([`read`]) hands it to each of its own members' receiving
//!    sessions (never back to a member of the sender's name); the sending router
//!    skips its own subject.
//!
//! Order: one sender's broadcasts travel one subject from one NATS connection and are
//! read by one task per router, so they keep their order. A broadcast and the sender's
//! direct messages to a remote peer travel different subjects, read by different tasks:
//! their relative order is not kept across routers (on one router it is).
//! Undeliverable broadcasts are dropped, as on one router (nobody waits for them).

use std::sync::Arc;

use futures_util::StreamExt;
use lanmesh_proto::Frame;
use tokio::sync::watch;
use tracing::debug;

use super::LocalView;
use super::wire;
use crate::metrics::Metrics;
use crate::table::{Forward, Route};

/// A new broadcast route: the inbox the driver empties onto NATS.
pub(crate) fn route(capacity: usize) -> Arc<Route> {
    Arc::new(Route {
        replaced: None,
        remote: true,
        pressure: Arc::default(),
        inbox: Arc::new(crate::inbox::Inbox::new(capacity)),
    })
}

/// Publishes what local sessions broadcast to the other routers; dropped when NATS is
/// not connected.
pub(crate) async fn publish(
    client: &async_nats::Client,
    subject: &str,
    route: &Route,
    forwards: Vec<Forward>,
    threshold: usize,
    metrics: &Metrics,
) {
    let connected = client.connection_state() == async_nats::connection::State::Connected;
    for fwd in forwards {
        route.pressure.taken(fwd.bytes, threshold);
        if fwd.frames.is_empty() || !connected {
            continue;
        }
        metrics.nats_frames(fwd.frames.len(), 0);
        metrics.nats_broadcasts(fwd.frames.len(), 0);
        for batch in wire::encode_batch(&fwd.frames, wire::MAX_BATCH) {
            if let Err(e) = client.publish(subject.to_owned(), batch).await {
                debug!(error = %e, "broadcast not published");
                break;
            }
        }
    }
}

/// Reads the other routers' broadcasts (`sub`: `lanmesh.<mesh>.all.*`) and hands them to
/// this router's members; `own` is this router's subject, whose messages are skipped.
pub(crate) async fn read(
    mut sub: async_nats::Subscriber,
    own: String,
    view: watch::Receiver<Arc<LocalView>>,
    threshold: usize,
    metrics: Arc<Metrics>,
) {
    while let Some(msg) = sub.next().await {
        if msg.subject.as_str() == own {
            continue;
        }
        let frames = match wire::decode_broadcasts(msg.payload) {
            Ok(f) => f,
            Err(e) => {
                debug!(subject = %msg.subject, error = %e, "broadcast from NATS dropped");
                continue;
            }
        };
        metrics.nats_frames(0, frames.len());
        metrics.nats_broadcasts(0, frames.len());
        let snapshot = view.borrow().clone();
        fan_out(&snapshot, &frames, threshold);
    }
}

/// Hands broadcasts from another router to each local member's receiving session but
/// the sender's namesake; a session with no room misses them (broadcasts are not nacked).
/// Returns how many sessions took them.
pub(crate) fn fan_out(view: &LocalView, frames: &[Frame], threshold: usize) -> usize {
    let mut took = 0;
    for (name, route) in &view.snapshot.routes {
        if route.remote {
            continue;
        }
        let these: Vec<Frame> = frames
            .iter()
            .filter(|f| !matches!(f, Frame::Deliver(m) if m.peer == *name))
            .cloned()
            .collect();
        if these.is_empty() {
            continue;
        }
        let fwd = Forward::new(these);
        route.pressure.forwarded(fwd.bytes);
        match route.inbox.push(fwd) {
            Ok(()) => took += 1,
            Err(crate::inbox::Refused::Full(fwd) | crate::inbox::Refused::Closed(fwd)) => {
                route.pressure.taken(fwd.bytes, threshold)
            }
        }
    }
    took
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::RoutingTable;
    use bytes::Bytes;
    use lanmesh_proto::Name;
    use lanmesh_proto::frame::{Message, flags};

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn local(capacity: usize) -> Arc<Route> {
        let mut r = route(capacity);
        Arc::get_mut(&mut r).unwrap().remote = false;
        r
    }

    fn broadcast(from: &str, id: u64) -> Frame {
        Frame::Deliver(Message {
            peer: name(from),
            id,
            flags: flags::BROADCAST,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"hi"),
        })
    }

    fn taken(r: &Route) -> Vec<Frame> {
        r.inbox.close().into_iter().flat_map(|f| f.frames).collect()
    }

    #[test]
    fn each_local_member_gets_a_remote_broadcast_once_and_in_order() {
        let (bob, bea, full, carol) = (local(8), local(8), local(0), route(8));
        let mut table = RoutingTable::default();
        table.routes.insert(name("bob"), bob.clone());
        table.routes.insert(name("bea"), bea.clone());
        table.routes.insert(name("dan"), full.clone());
        // Another router's member: its own router hands it the broadcast.
        table.routes.insert(name("carol"), carol.clone());
        // A local namesake of the sender does not get the sender's broadcast back.
        let alice_here = local(8);
        table.routes.insert(name("alice"), alice_here.clone());
        let view = LocalView {
            snapshot: Arc::new(table),
            members: Vec::new(),
        };
        let sent = vec![broadcast("alice", 1), broadcast("alice", 2)];
        assert_eq!(fan_out(&view, &sent, 1 << 20), 2, "bob and bea");
        assert_eq!(taken(&bob), sent);
        assert_eq!(taken(&bea), sent);
        assert!(taken(&carol).is_empty());
        assert!(taken(&alice_here).is_empty());
        assert!(taken(&full).is_empty());
        assert!(
            !full.pressure.holds_back(0),
            "a refused forward leaves no pressure behind"
        );
    }
}
