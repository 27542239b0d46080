//! The routing snapshot: an immutable map from names to sessions.
//!
//! The `Router` actor builds a new one whenever membership changes and hands it to every
//! session, so a session forwards a message straight to the destination session without
//! passing through the router's mailbox.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use lanmesh_proto::Name;

use crate::session::Session;

/// Name → session, as of the last membership change.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub(crate) routes: HashMap<Name, Addr<Session>>,
}

impl RoutingTable {
    /// The session holding `name`.
    pub fn get(&self, name: &str) -> Option<&Addr<Session>> {
        self.routes.get(name)
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
        self.routes.iter()
    }
}

/// Shared snapshot handed to sessions.
pub(crate) type Snapshot = Arc<RoutingTable>;
