//! The routing snapshot (an immutable map from names to sessions), and what travels
//! along a route: forwarded frames and membership changes, and the notice that a
//! session was replaced.
//!
//! The `Router` actor builds a new one whenever membership changes and hands it to every
//! session, so a session forwards a message straight to the destination session without
//! passing through the router's mailbox.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Message, Recipient};
use lanmesh_proto::{Frame, Name};

use crate::inbox::Inbox;
use crate::pressure::Pressure;

/// Where one member's frames go: its session, and how congested that session is.
/// Shared (`Arc`) between the snapshots and the frames on their way, so taking a route
/// along costs no allocation (cloning a `Recipient` allocates).
#[derive(Debug)]
pub struct Route {
    /// Tells the session a newer connection of its peer replaced it (`None`: a remote
    /// name's route, which no local session replaces).
    pub(crate) replaced: Option<Recipient<Replaced>>,
    /// A name another router serves: its inbox is emptied onto NATS (see `federation`).
    pub(crate) remote: bool,
    pub(crate) pressure: Arc<Pressure>,
    /// Where its frames are put.
    pub(crate) inbox: Arc<Inbox<Forward>>,
}

/// The routing table's map. Every forwarded frame looks its destination up, so it uses
/// foldhash (fast, seeded per process) instead of SipHash.
pub(crate) type Routes = HashMap<Name, Arc<Route>, foldhash::fast::RandomState>;

/// Name → session, as of the last membership change: the session receiving each name's
/// messages, and the extra sending sessions by (name, id slot), where answers to their
/// messages go.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub(crate) routes: Routes,
    pub(crate) senders: HashMap<(Name, u32), Arc<Route>, foldhash::fast::RandomState>,
    /// Federated, with members elsewhere: where broadcasts for every other router go
    /// (one NATS message each, whatever the number of routers and their members), under
    /// the name of one remote member (never a local one, so never the sender's).
    pub(crate) broadcast: Option<(Name, Arc<Route>)>,
}

impl RoutingTable {
    /// Whether `name` is a member.
    pub fn contains(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the mesh is empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every member's name.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.routes.keys()
    }
}

/// Frames for a session's peer, from another session (or the router's own nacks), or a
/// membership change from the router. Both come through the same list, so a peer hears
/// of another's leaving only after everything that one sent before it left.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) frames: Vec<Frame>,
    /// Their encoded size, counted in the recipient's `Pressure` until it takes them.
    pub(crate) bytes: usize,
    /// The new routing table and the event to tell the peer.
    pub(crate) membership: Option<Box<(Snapshot, Option<Frame>)>>,
}

impl Forward {
    /// Frames that count towards the recipient's congestion.
    pub(crate) fn new(frames: Vec<Frame>) -> Self {
        let bytes = frames.iter().map(Frame::encoded_len).sum();
        Self {
            frames,
            bytes,
            membership: None,
        }
    }

    /// Frames the router sends on its own account (nacks, handovers).
    pub(crate) fn untracked(frames: Vec<Frame>) -> Self {
        Self {
            frames,
            bytes: 0,
            membership: None,
        }
    }

    /// A membership change.
    pub(crate) fn membership(snapshot: Snapshot, event: Option<Frame>) -> Self {
        Self {
            frames: Vec::new(),
            bytes: 0,
            membership: Some(Box::new((snapshot, event))),
        }
    }
}

/// The same peer (same name, same key) joined on a new connection: the session this is
/// sent to is stale, and what it holds for the peer goes to the new session.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Replaced {
    /// The new session's inbox.
    pub(crate) by: Arc<Inbox<Forward>>,
}

/// Shared snapshot handed to sessions.
pub(crate) type Snapshot = Arc<RoutingTable>;

impl lanmesh_core::session::Routes for RoutingTable {
    type Route = Arc<Route>;

    fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    fn route_slot(&self, name: &str, slot: u32) -> Option<&Arc<Route>> {
        if slot == 0 {
            return self.routes.get(name);
        }
        // Looked up by a borrowed name: build the key only for this rare path (answers to
        // extra sending sessions).
        let key = (Name::new(name).ok()?, slot);
        // A remote name's sessions are its router's business: answers go to its route.
        self.senders
            .get(&key)
            .or_else(|| self.routes.get(name).filter(|r| r.remote))
    }

    /// Where a broadcast goes: every local member, and the other routers once (their
    /// routers hand it to each of their members), not each remote member.
    fn for_each(&self, f: &mut dyn FnMut(&Name, &Arc<Route>)) {
        for (name, route) in &self.routes {
            if !route.remote {
                f(name, route);
            }
        }
        if let Some((name, route)) = &self.broadcast {
            f(name, route);
        }
    }

    fn identity(route: &Arc<Route>) -> usize {
        // A session's pressure is its own: the pointer identifies the destination.
        Arc::as_ptr(&route.pressure) as usize
    }
}
