//! The `Router` actor: membership, name bindings and the routing snapshot.
//!
//! It is on the control path only (join, leave, list); messages never pass through it.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use lanmesh_proto::{ErrorCode, Frame, Name, PeerInfo};
use tracing::info;

use crate::bindings::Bindings;
use crate::table::{Forward, Replaced, Route, RoutingTable, Snapshot};

struct Member {
    session_id: u64,
    /// Its session and that session's pressure, shared with every routing snapshot.
    route: Arc<Route>,
    info: PeerInfo,
    counters: Arc<SessionCounters>,
    resume: bytes::Bytes,
}

/// Messages a session forwarded for its peer and delivered to it.
#[derive(Debug, Default)]
pub(crate) struct SessionCounters {
    pub(crate) sent: std::sync::atomic::AtomicU64,
    pub(crate) received: std::sync::atomic::AtomicU64,
}

/// A member and its traffic since it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// What the router knows about it.
    pub info: PeerInfo,
    /// Messages it sent (one per recipient for broadcasts).
    pub messages_sent: u64,
    /// Messages delivered to it.
    pub messages_received: u64,
}

/// Owns the member list and the name bindings.
pub struct Router {
    members: HashMap<Name, Member>,
    snapshot: Snapshot,
    bindings: Bindings,
    pub(crate) hooks: crate::hooks::Dispatch,
}

impl Actor for Router {
    type Context = Context<Self>;
}

/// A session that finished its handshake asks to join under a name.
#[derive(Message)]
#[rtype(result = "Result<Joined, JoinRefused>")]
pub(crate) struct Join {
    pub(crate) session_id: u64,
    /// How the other sessions reach it, once it is a member.
    pub(crate) route: Arc<Route>,
    pub(crate) info: PeerInfo,
    pub(crate) counters: Arc<SessionCounters>,
    /// The peer's resume token: the same one again means the same process reconnecting.
    pub(crate) resume: bytes::Bytes,
}

/// Accepted: the routing snapshot including the new member, and the member list.
pub(crate) struct Joined {
    pub(crate) snapshot: Snapshot,
    pub(crate) peers: Vec<PeerInfo>,
}

/// Refused, with the code and text for the `Error` frame.
#[derive(Debug)]
pub(crate) struct JoinRefused {
    pub(crate) code: ErrorCode,
    pub(crate) text: String,
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Leave {
    pub(crate) session_id: u64,
    pub(crate) name: Name,
}

/// The member list.
#[derive(Message)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct ListPeers;

/// The member list with traffic counters.
#[derive(Message)]
#[rtype(result = "Vec<PeerStats>")]
pub struct ListPeerStats;

impl Handler<ListPeerStats> for Router {
    type Result = Vec<PeerStats>;

    fn handle(&mut self, _: ListPeerStats, _: &mut Context<Self>) -> Vec<PeerStats> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out: Vec<PeerStats> = self
            .members
            .values()
            .map(|m| PeerStats {
                info: m.info.clone(),
                messages_sent: m.counters.sent.load(Relaxed),
                messages_received: m.counters.received.load(Relaxed),
            })
            .collect();
        out.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        out
    }
}

impl Router {
    pub(crate) fn new(bindings: Bindings) -> Self {
        Self {
            members: HashMap::new(),
            snapshot: Snapshot::default(),
            bindings,
            hooks: Default::default(),
        }
    }

    fn rebuild_snapshot(&mut self) {
        let routes = self
            .members
            .iter()
            .map(|(n, m)| (n.clone(), Arc::clone(&m.route)))
            .collect();
        self.snapshot = Arc::new(RoutingTable { routes });
    }

    /// Hands the current snapshot, and the event if any, to every session but `skip`.
    fn publish(&self, event: Option<Frame>, skip: Option<u64>) {
        self.hooks.membership(event.as_ref());
        for m in self.members.values() {
            if Some(m.session_id) == skip {
                continue;
            }
            // Through the inbox, behind whatever other sessions forwarded before: a
            // peer learns of a leave after what the leaver sent. Control-plane events are
            // rare and small, and go even to a session whose inbox is full.
            m.route
                .inbox
                .push_always(Forward::membership(self.snapshot.clone(), event.clone()));
        }
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self.members.values().map(|m| m.info.clone()).collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        peers
    }
}

impl Handler<Join> for Router {
    type Result = Result<Joined, JoinRefused>;

    fn handle(&mut self, join: Join, _: &mut Context<Self>) -> Self::Result {
        if let Err(refusal) = self.bindings.claim(&join.info.name, &join.info.key) {
            return Err(JoinRefused {
                code: ErrorCode::NameTaken,
                text: format!(
                    "name {:?} belongs to another key ({}); this peer's key is {}",
                    join.info.name.as_str(),
                    lanmesh_proto::handshake::fingerprint(&refusal.owner),
                    lanmesh_proto::handshake::fingerprint(&join.info.key),
                ),
            });
        }
        // The same key again is a reconnect (the old session is parked, or its broken
        // connection has not been noticed yet): the new connection wins, takes what the
        // old one holds, and the old one is told. Another key is refused. With the same
        // resume token it is the same process resuming, which the others need not hear
        // of; with another one, a new process whose peers must restart their streams.
        let reconnect = match self.members.get(&join.info.name) {
            Some(holder) if holder.info.key == join.info.key => {
                holder.route.replaced.do_send(Replaced {
                    by: join.route.inbox.clone(),
                });
                !join.resume.is_empty() && holder.resume == join.resume
            }
            Some(holder) => {
                return Err(JoinRefused {
                    code: ErrorCode::NameTaken,
                    text: format!(
                        "name {:?} is already held by a peer connected from {}",
                        join.info.name.as_str(),
                        holder.info.addr
                    ),
                });
            }
            None => false,
        };
        info!(peer = %join.info.name, addr = %join.info.addr, reconnect, "peer joined");
        let event = (!reconnect).then(|| Frame::PeerJoined(join.info.clone()));
        let member = Member {
            session_id: join.session_id,
            route: join.route,
            info: join.info,
            counters: join.counters,
            resume: join.resume,
        };
        self.members.insert(member.info.name.clone(), member);
        self.rebuild_snapshot();
        self.publish(event, Some(join.session_id));
        Ok(Joined {
            snapshot: self.snapshot.clone(),
            peers: self.peer_list(),
        })
    }
}

impl Handler<Leave> for Router {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Context<Self>) {
        let ours = self
            .members
            .get(&leave.name)
            .is_some_and(|m| m.session_id == leave.session_id);
        if !ours {
            return;
        }
        self.members.remove(&leave.name);
        info!(peer = %leave.name, "peer left");
        self.rebuild_snapshot();
        self.publish(Some(Frame::PeerLeft { name: leave.name }), None);
    }
}

impl Handler<ListPeers> for Router {
    type Result = Vec<PeerInfo>;

    fn handle(&mut self, _: ListPeers, _: &mut Context<Self>) -> Vec<PeerInfo> {
        self.peer_list()
    }
}
