//! What one session hands other sessions: frames grouped by destination, and notices.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use lanmesh_proto::{Frame, Name};

use super::Routes;

/// Frames produced while handling input, grouped by destination in the order the
/// destinations first appear (so a record's frames reach each destination in order), and
/// the notices (`Nack`s for senders) that go regardless of any budget.
///
/// A record usually goes to one or two destinations, found by a scan; only a record
/// reaching many (a broadcast) builds an index.
pub struct Outgoing<R> {
    by_dest: Vec<(Name, R, Vec<Frame>)>,
    /// Position in `by_dest` per destination, once there are more than [`SCAN`].
    index: BTreeMap<usize, usize>,
    notices: Vec<(R, Frame)>,
}

const SCAN: usize = 8;

impl<R> Default for Outgoing<R> {
    fn default() -> Self {
        Self {
            by_dest: Vec::new(),
            index: BTreeMap::new(),
            notices: Vec::new(),
        }
    }
}

impl<R: Clone> Outgoing<R> {
    pub(crate) fn push<T: Routes<Route = R>>(&mut self, dest: &Name, route: &R, frame: Frame) {
        let key = T::identity(route);
        let found = if self.by_dest.len() <= SCAN {
            self.by_dest
                .iter()
                .position(|(_, r, _)| T::identity(r) == key)
        } else {
            self.index.get(&key).copied()
        };
        if let Some(i) = found {
            self.by_dest[i].2.push(frame);
            return;
        }
        self.by_dest
            .push((dest.clone(), route.clone(), alloc::vec![frame]));
        let len = self.by_dest.len();
        if len == SCAN + 1 {
            for (i, (_, r, _)) in self.by_dest.iter().enumerate() {
                self.index.insert(T::identity(r), i);
            }
        } else if len > SCAN + 1 {
            self.index.insert(key, len - 1);
        }
    }

    pub(crate) fn notice(&mut self, route: R, frame: Frame) {
        self.notices.push((route, frame));
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.by_dest.is_empty() && self.notices.is_empty()
    }

    /// The frames for each destination: hand each list to its session as one unit.
    pub fn drain_forwards(&mut self) -> impl Iterator<Item = (Name, R, Vec<Frame>)> + '_ {
        self.index.clear();
        self.by_dest.drain(..)
    }

    /// Notices for other sessions' peers: hand each over even when that session's inbox
    /// is full (they are small, and a sender must learn what was not delivered).
    pub fn drain_notices(&mut self) -> impl Iterator<Item = (R, Frame)> + '_ {
        self.notices.drain(..)
    }

    /// Lets go of room a burst (a broadcast) made, which an idle session should not keep.
    pub fn shrink(&mut self) {
        if self.by_dest.capacity() > SCAN || self.notices.capacity() > SCAN {
            *self = Self::default();
        }
    }
}
