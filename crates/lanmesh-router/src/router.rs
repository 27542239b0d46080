//! The `Router` actor: membership, name bindings and the routing snapshot.
//!
//! It is on the control path only (join, leave, list); messages never pass through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, ResponseActFuture};
use lanmesh_proto::{ErrorCode, Frame, Name, PeerInfo};
use tracing::info;

use crate::bindings::{Bindings, Refusal};
use crate::table::{Forward, Replaced, Route, RoutingTable, Snapshot};

/// One connection holding a member's name.
struct Attachment {
    session_id: u64,
    /// Its session and that session's pressure, shared with every routing snapshot.
    route: Arc<Route>,
    resume: bytes::Bytes,
    info: PeerInfo,
}

/// A name in the mesh: the session that receives its messages, and any extra sessions of
/// the same key that only send (a `lanmesh send` beside a `lanmesh listen`), by id slot.
struct Member {
    receiver: Option<Attachment>,
    senders: BTreeMap<u32, Attachment>,
}

impl Member {
    /// What others see of it: its receiving session, else its first sending one.
    fn info(&self) -> Option<&PeerInfo> {
        self.receiver
            .as_ref()
            .or_else(|| self.senders.values().next())
            .map(|a| &a.info)
    }

    fn attachments(&self) -> impl Iterator<Item = &Attachment> {
        self.receiver.iter().chain(self.senders.values())
    }

    fn is_empty(&self) -> bool {
        self.receiver.is_none() && self.senders.is_empty()
    }
}

/// Messages a name's sessions forwarded for it and delivered to it, since the router
/// started: one set per name, shared by all its sessions, present and past, so that the
/// rates the dashboard shows include `lanmesh send` processes that come and go.
#[derive(Debug, Default)]
pub(crate) struct NameCounters {
    pub(crate) sent: std::sync::atomic::AtomicU64,
    pub(crate) received: std::sync::atomic::AtomicU64,
}

/// A peer of the mesh and, for a member of this router, its traffic since it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// What the router knows about it (for a federated router, its address is
    /// `ADDR via ROUTER`, as `peers` shows it).
    pub info: PeerInfo,
    /// The router it is on, when this router is federated.
    pub router: Option<String>,
    /// A member of this router (not one another router of the mesh serves): only those
    /// have counters.
    pub local: bool,
    /// Messages it sent (for a broadcast, one per local recipient and one for all the
    /// other routers of a federated mesh); 0 for a remote peer.
    pub messages_sent: u64,
    /// Messages delivered to it; 0 for a remote peer.
    pub messages_received: u64,
}

/// A name another router of the mesh serves (see `federation`).
struct RemoteMember {
    info: PeerInfo,
    /// The router holding it.
    router: String,
    /// Where local sessions put frames for it: the federation driver's inbox.
    route: Arc<Route>,
}

/// Owns the member list and the name bindings.
pub struct Router {
    members: HashMap<Name, Member>,
    /// Names served by other routers of the mesh (a local member of the same name wins).
    remote: HashMap<Name, RemoteMember>,
    /// The federation driver, when the router is federated.
    #[cfg(feature = "federation")]
    pub(crate) federation: Option<crate::federation::Link>,
    snapshot: Snapshot,
    bindings: Bindings,
    /// Traffic per name (see [`NameCounters`]); at most [`TRAFFIC_NAMES`] names beyond
    /// the members.
    traffic: HashMap<Name, Arc<NameCounters>>,
    pub(crate) hooks: crate::hooks::Dispatch,
}

/// How many names that are not members keep their traffic counters.
const TRAFFIC_NAMES: usize = 4096;

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
    /// The peer's resume token: the same one again means the same process reconnecting.
    pub(crate) resume: bytes::Bytes,
    /// Its id slot: 0 to receive the name's messages, else an extra sending session.
    pub(crate) slot: u32,
}

/// Accepted: the routing snapshot including the new member, and the member list.
pub(crate) struct Joined {
    pub(crate) snapshot: Snapshot,
    pub(crate) peers: Vec<PeerInfo>,
    /// The name's traffic counters, which the session adds to from now on.
    pub(crate) counters: Arc<NameCounters>,
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

/// The mesh's peers (this router's members, with their traffic counters, and when
/// federated the other routers' members), by name.
#[derive(Message)]
#[rtype(result = "Vec<PeerStats>")]
pub struct ListPeerStats;

impl Handler<ListPeerStats> for Router {
    type Result = Vec<PeerStats>;

    fn handle(&mut self, _: ListPeerStats, _: &mut Context<Self>) -> Vec<PeerStats> {
        use std::sync::atomic::Ordering::Relaxed;
        let me = self.router_id().map(str::to_owned);
        let mut out: Vec<PeerStats> = self
            .members
            .values()
            .filter_map(|m| {
                let mut info = m.info()?.clone();
                let counters = self.traffic.get(&info.name);
                if let Some(me) = &me {
                    info.addr = via(&info.addr, me);
                }
                Some(PeerStats {
                    messages_sent: counters.map_or(0, |c| c.sent.load(Relaxed)),
                    messages_received: counters.map_or(0, |c| c.received.load(Relaxed)),
                    info,
                    router: me.clone(),
                    local: true,
                })
            })
            .collect();
        out.extend(
            self.remote
                .iter()
                .filter(|(n, _)| !self.members.contains_key(*n))
                .map(|(_, r)| PeerStats {
                    info: remote_info(r),
                    router: Some(r.router.clone()),
                    local: false,
                    messages_sent: 0,
                    messages_received: 0,
                }),
        );
        out.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        out
    }
}

impl Router {
    pub(crate) fn new(bindings: Bindings) -> Self {
        Self {
            members: HashMap::new(),
            remote: HashMap::new(),
            #[cfg(feature = "federation")]
            federation: None,
            snapshot: Snapshot::default(),
            bindings,
            traffic: HashMap::new(),
            hooks: Default::default(),
        }
    }

    /// The traffic counters of `name`, made on its first join.
    fn counters_of(&mut self, name: &Name) -> Arc<NameCounters> {
        if !self.traffic.contains_key(name)
            && self.traffic.len() >= self.members.len() + TRAFFIC_NAMES
        {
            // Names that left long ago, or never came back, make room.
            let members = &self.members;
            self.traffic.retain(|n, _| members.contains_key(n));
        }
        Arc::clone(self.traffic.entry(name.clone()).or_default())
    }

    fn rebuild_snapshot(&mut self) {
        let mut routes: crate::table::Routes = self
            .members
            .iter()
            .filter_map(|(n, m)| Some((n.clone(), Arc::clone(&m.receiver.as_ref()?.route))))
            .collect();
        for (n, r) in &self.remote {
            if !self.members.contains_key(n) {
                routes.insert(n.clone(), Arc::clone(&r.route));
            }
        }
        let senders = self
            .members
            .iter()
            .flat_map(|(n, m)| {
                m.senders
                    .iter()
                    .map(move |(slot, a)| ((n.clone(), *slot), Arc::clone(&a.route)))
            })
            .collect();
        #[cfg(feature = "federation")]
        let broadcast = self.federation.as_ref().and_then(|link| {
            let (name, _) = routes.iter().find(|(_, r)| r.remote)?;
            Some((name.clone(), link.broadcast.clone()))
        });
        #[cfg(not(feature = "federation"))]
        let broadcast = None;
        self.snapshot = Arc::new(RoutingTable {
            routes,
            senders,
            broadcast,
        });
        #[cfg(feature = "federation")]
        if let Some(link) = &self.federation {
            let local = self
                .members
                .values()
                .filter_map(|m| m.info().cloned())
                .collect();
            link.local_changed(self.snapshot.clone(), local);
        }
    }

    /// This router's name in the mesh, when federated.
    fn router_id(&self) -> Option<&str> {
        #[cfg(feature = "federation")]
        if let Some(link) = &self.federation {
            return Some(link.router_id.as_str());
        }
        None
    }

    /// Hands the current snapshot, and the event if any, to every session but `skip`.
    fn publish(&self, event: Option<Frame>, skip: Option<u64>) {
        self.hooks.membership(event.as_ref());
        for a in self.members.values().flat_map(Member::attachments) {
            if Some(a.session_id) == skip {
                continue;
            }
            // Through the inbox, behind whatever other sessions forwarded before: a
            // peer learns of a leave after what the leaver sent. Control-plane events are
            // rare and small, and go even to a session whose inbox is full.
            a.route
                .inbox
                .push_always(Forward::membership(self.snapshot.clone(), event.clone()));
        }
    }

    /// Members here and, when federated, at the other routers, each with the router it
    /// is on after its address (`ADDR via ROUTER`).
    fn peer_list(&self) -> Vec<PeerInfo> {
        let me = self.router_id();
        let mut peers: Vec<PeerInfo> = self
            .members
            .values()
            .filter_map(|m| m.info().cloned())
            .map(|mut info| {
                if let Some(me) = me {
                    info.addr = via(&info.addr, me);
                }
                info
            })
            .collect();
        peers.extend(
            self.remote
                .iter()
                .filter(|(n, _)| !self.members.contains_key(*n))
                .map(|(_, r)| remote_info(r)),
        );
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        peers
    }
}

/// `addr` with the router it is on, as `peers` shows it (see `remote_info`).
fn via(addr: &str, router: &str) -> String {
    format!("{addr} via {router}")
}

/// What others see of a remote member: its address says which router it is on.
fn remote_info(r: &RemoteMember) -> PeerInfo {
    let mut info = r.info.clone();
    info.addr = via(&info.addr, &r.router);
    // Its address is as its own router saw it, maybe at another site: messages to it
    // cross the routers.
    info.direct.clear();
    info
}

impl Handler<Join> for Router {
    type Result = ResponseActFuture<Self, Result<Joined, JoinRefused>>;

    fn handle(&mut self, join: Join, _: &mut Context<Self>) -> Self::Result {
        let now = std::time::Instant::now();
        #[cfg_attr(not(feature = "federation"), allow(unused_variables))]
        let newly_bound = self.bindings.owner(&join.info.name).is_none();
        if let Err(refusal) = self.bindings.claim(&join.info.name, &join.info.key, now) {
            let code = match refusal {
                Refusal::Owned { .. } => ErrorCode::NameTaken,
                _ => ErrorCode::Unauthorized,
            };
            tracing::debug!(name = %join.info.name.as_str(), ?refusal, "join refused by the name bindings");
            return Box::pin(actix::fut::ready(Err(JoinRefused {
                code,
                text: refusal.text(&join.info.name, &join.info.key),
            })));
        }
        // Federated: the name must be bound to this key mesh-wide too (atomically, in the
        // bindings bucket), unless this router admitted it already.
        #[cfg(feature = "federation")]
        if let Some(link) = &self.federation {
            use actix::{ActorFutureExt as _, WrapFuture as _};
            if !self.members.contains_key(&join.info.name) {
                let claim = link.claim(join.info.name.clone(), join.info.key);
                return Box::pin(claim.into_actor(self).map(move |claimed, act, _| {
                    match claimed {
                        Ok(()) => act.admit(join),
                        Err(elsewhere) => {
                            if newly_bound {
                                act.bindings.forget(&join.info.name);
                            }
                            tracing::debug!(name = %join.info.name.as_str(), "join refused: bound elsewhere in the mesh");
                            Err(JoinRefused {
                                code: ErrorCode::NameTaken,
                                text: format!(
                                    "name {:?} belongs to another key ({}) elsewhere in the mesh; this peer's key is {}",
                                    join.info.name.as_str(),
                                    lanmesh_proto::handshake::fingerprint(&elsewhere.owner),
                                    lanmesh_proto::handshake::fingerprint(&join.info.key),
                                ),
                            })
                        }
                    }
                }));
            }
        }
        Box::pin(actix::fut::ready(self.admit(join)))
    }
}

impl Router {
    /// Admits a member whose name binding holds: the rest of a `Join`.
    fn admit(&mut self, join: Join) -> Result<Joined, JoinRefused> {
        // Several sessions of one key may hold a name: one receives its messages (slot 0)
        // and any number only send (a non-zero id slot each). A session taking a place
        // that is held (the same slot) replaces the holder: with the same resume token it
        // is the same process reconnecting (the old session is parked, or its broken
        // connection has not been noticed yet), which the others need not hear of; with
        // another token, for the receiving place, a new process whose peers must restart
        // their streams with it. Another key is refused.
        let existed = self.members.contains_key(&join.info.name);
        let member = self
            .members
            .entry(join.info.name.clone())
            .or_insert_with(|| Member {
                receiver: None,
                senders: BTreeMap::new(),
            });
        if let Some(holder) = member.attachments().next() {
            if holder.info.key != join.info.key {
                let text = format!(
                    "name {:?} is already held by a peer connected from {}",
                    join.info.name.as_str(),
                    holder.info.addr
                );
                return Err(JoinRefused {
                    code: ErrorCode::NameTaken,
                    text,
                });
            }
        }
        let place = if join.slot == 0 {
            member.receiver.as_ref()
        } else {
            member.senders.get(&join.slot)
        };
        let resumed =
            place.is_some_and(|held| !join.resume.is_empty() && held.resume == join.resume);
        if let Some(held) = place {
            if join.slot != 0 && !resumed {
                // Two processes drew the same slot (1 in 16 million): the newer tries
                // again with another.
                return Err(JoinRefused {
                    code: ErrorCode::NameTaken,
                    text: format!(
                        "id slot {} of {:?} is in use by another process; try again",
                        join.slot,
                        join.info.name.as_str()
                    ),
                });
            }
            if let Some(replaced) = &held.route.replaced {
                replaced.do_send(Replaced {
                    by: join.route.inbox.clone(),
                });
            }
        }
        // Others restart their streams with a new receiving process, and hear of a name
        // that was not in the mesh.
        let announce = !existed || (join.slot == 0 && !resumed);
        info!(peer = %join.info.name, addr = %join.info.addr, slot = join.slot, resumed, "peer joined");
        let event = announce.then(|| Frame::PeerJoined(join.info.clone()));
        let name = join.info.name.clone();
        let attachment = Attachment {
            session_id: join.session_id,
            route: join.route,
            resume: join.resume,
            info: join.info,
        };
        if join.slot == 0 {
            member.receiver = Some(attachment);
        } else {
            member.senders.insert(join.slot, attachment);
        }
        self.rebuild_snapshot();
        self.publish(event, Some(join.session_id));
        Ok(Joined {
            snapshot: self.snapshot.clone(),
            peers: self.peer_list(),
            counters: self.counters_of(&name),
        })
    }
}

impl Handler<Leave> for Router {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Context<Self>) {
        let Some(member) = self.members.get_mut(&leave.name) else {
            return;
        };
        // Only the session's own place: a stale session leaving after it was replaced
        // changes nothing.
        if member
            .receiver
            .as_ref()
            .is_some_and(|a| a.session_id == leave.session_id)
        {
            member.receiver = None;
        } else {
            let before = member.senders.len();
            member
                .senders
                .retain(|_, a| a.session_id != leave.session_id);
            if member.senders.len() == before {
                return;
            }
        }
        let gone = member.is_empty();
        if gone {
            self.members.remove(&leave.name);
            info!(peer = %leave.name, "peer left");
        }
        self.rebuild_snapshot();
        // A name that another router of the mesh serves too is still in the mesh, there.
        let event = gone.then(|| match self.remote.get(&leave.name) {
            Some(r) => Frame::PeerJoined(remote_info(r)),
            None => Frame::PeerLeft { name: leave.name },
        });
        self.publish(event, None);
    }
}

impl Handler<ListPeers> for Router {
    type Result = Vec<PeerInfo>;

    fn handle(&mut self, _: ListPeers, _: &mut Context<Self>) -> Vec<PeerInfo> {
        self.peer_list()
    }
}

#[cfg(feature = "federation")]
impl Handler<crate::federation::MeshReleased> for Router {
    type Result = ();

    /// Released mesh-wide: the next key to join under it binds it, here too. A member
    /// holding it keeps it (its router binds it in the mesh again).
    fn handle(&mut self, released: crate::federation::MeshReleased, _: &mut Context<Self>) {
        let name = released.0;
        if !self.members.contains_key(&name) && self.bindings.owner(&name).is_some() {
            info!(peer = %name, "name released in the mesh: released here too");
            self.bindings.forget(&name);
        }
    }
}

#[cfg(feature = "federation")]
impl Handler<crate::federation::RemoteChanged> for Router {
    type Result = ();

    /// Names other routers serve came or went: the routing snapshot follows, and local
    /// peers hear of those that no local member shadows.
    fn handle(&mut self, changed: crate::federation::RemoteChanged, _: &mut Context<Self>) {
        use crate::federation::Remote;
        let mut events = Vec::new();
        for change in changed.0 {
            match change {
                Remote::Seen {
                    info,
                    router,
                    route,
                } => {
                    let name = info.name.clone();
                    let member = RemoteMember {
                        info,
                        router,
                        route,
                    };
                    if !self.members.contains_key(&name) {
                        events.push(Frame::PeerJoined(remote_info(&member)));
                    }
                    self.remote.insert(name, member);
                }
                Remote::Gone(name) => {
                    if self.remote.remove(&name).is_some() && !self.members.contains_key(&name) {
                        events.push(Frame::PeerLeft { name });
                    }
                }
            }
        }
        self.rebuild_snapshot();
        if events.is_empty() {
            self.publish(None, None);
        }
        for event in events {
            self.publish(Some(event), None);
        }
    }
}
