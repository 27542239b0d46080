//! The routing snapshot: an immutable map from names to sessions.
//!
//! The `Router` actor builds a new one whenever membership changes and hands it to every
//! session, so a session forwards a message straight to the destination session without
//! passing through the router's mailbox.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use lanmesh_proto::Name;

use crate::inbox::Inbox;
use crate::pressure::Pressure;
use crate::session::Session;

/// Where one member's frames go: its session, and how congested that session is.
/// Shared (`Arc`) between the snapshots and the frames on their way, so taking a route
/// along costs no allocation (cloning an `Addr` allocates).
#[derive(Debug)]
pub struct Route {
    pub(crate) addr: Addr<Session>,
    pub(crate) pressure: Arc<Pressure>,
    /// Where its frames are put.
    pub(crate) inbox: Arc<Inbox>,
}

/// The routing table's map. Every forwarded frame looks its destination up, so it uses
/// foldhash (fast, seeded per process) instead of SipHash.
pub(crate) type Routes = HashMap<Name, Arc<Route>, foldhash::fast::RandomState>;

/// Name → session, as of the last membership change.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub(crate) routes: Routes,
}

impl RoutingTable {
    /// The session holding `name`.
    pub fn get(&self, name: &str) -> Option<&Addr<Session>> {
        self.routes.get(name).map(|r| &r.addr)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the mesh is empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &Addr<Session>)> {
        self.routes.iter().map(|(n, r)| (n, &r.addr))
    }
}

/// Shared snapshot handed to sessions.
pub(crate) type Snapshot = Arc<RoutingTable>;

impl lanmesh_core::session::Routes for RoutingTable {
    type Route = Arc<Route>;

    fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    fn for_each(&self, f: &mut dyn FnMut(&Name, &Arc<Route>)) {
        for (name, route) in &self.routes {
            f(name, route);
        }
    }

    fn identity(route: &Arc<Route>) -> usize {
        // A session's pressure is its own: the pointer identifies the destination.
        Arc::as_ptr(&route.pressure) as usize
    }
}
