//! Admission: which new connection gets a slot, before a byte of it is read.
//!
//! Slots are taken when a connection is accepted (not when its session actor starts), so
//! a burst cannot overshoot the limits. Four budgets, all in [`RouterConfig`]:
//!
//! 1. `max_connections`: open connections, handshaking or joined. A connection beyond it
//!    still gets a session, from a small `max_refusals` budget, that runs the handshake
//!    (for at most 1 s) and then refuses the peer with `Overloaded` and "router full" — so a peer that
//!    holds the mesh key learns the real reason. Beyond that budget it is closed at once.
//! 2. `max_connections_per_ip`: open connections from one source address; beyond it a
//!    new one is closed at once. One machine cannot take every slot.
//! 3. `max_handshakes`: connections still handshaking. When it is full, the oldest
//!    handshake is dropped to make room: a real handshake takes milliseconds, so only
//!    connections that sit silent are ever the oldest (a SYN-cache policy).
//! 4. `max_handshakes_per_ip`: handshakes from one source address; beyond it a new
//!    connection from there is closed at once.
//!
//! [`RouterConfig`]: crate::RouterConfig

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use actix::{Message, Recipient};

use crate::config::RouterConfig;

/// Tells a session that is still handshaking to end at once: a newer one needs its room.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Evicted;

/// Why a connection was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Every connection slot is taken (`max_connections`).
    Connections,
    /// The source address holds `max_connections_per_ip`.
    ConnectionsFromAddress,
    /// The source address has `max_handshakes_per_ip` handshakes under way.
    HandshakesFromAddress,
}

#[derive(Default)]
struct PerIp {
    open: usize,
    handshaking: usize,
}

struct Pending {
    ip: IpAddr,
    evict: Option<Recipient<Evicted>>,
}

#[derive(Default)]
struct State {
    open: usize,
    refusing: usize,
    per_ip: HashMap<IpAddr, PerIp>,
    /// Handshakes under way, oldest first (session ids grow).
    handshaking: BTreeMap<u64, Pending>,
}

/// The budgets and what is taken of them.
pub(crate) struct Admission {
    max_connections: usize,
    max_connections_per_ip: usize,
    max_handshakes: usize,
    max_handshakes_per_ip: usize,
    max_refusals: usize,
    state: Mutex<State>,
}

/// What a session holds of the budgets; giving it back is dropping it.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    ip: IpAddr,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Handshaking,
    Joined,
    /// A session that refuses its peer with "router full".
    Refusing,
}

/// The answer to a new connection.
pub(crate) enum Admit {
    /// A slot: run the session.
    Session(Ticket),
    /// No slot, but a refusal session that tells the peer why.
    Refuse(Ticket),
    /// Close it at once.
    Close(Full),
}

impl Admission {
    pub(crate) fn new(config: &RouterConfig) -> Arc<Self> {
        Arc::new(Self {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            max_handshakes: config.max_handshakes,
            max_handshakes_per_ip: config.max_handshakes_per_ip,
            max_refusals: config.max_refusals,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides about connection `id` from `ip`.
    pub(crate) fn admit(self: &Arc<Self>, id: u64, ip: IpAddr) -> Admit {
        let mut s = self.lock();
        let ticket = |kind| Ticket {
            admission: Arc::clone(self),
            id,
            ip,
            kind,
        };
        let from = s
            .per_ip
            .get(&ip)
            .map_or((0, 0), |p| (p.open, p.handshaking));
        if from.0 >= self.max_connections_per_ip {
            return Admit::Close(Full::ConnectionsFromAddress);
        }
        if from.1 >= self.max_handshakes_per_ip {
            return Admit::Close(Full::HandshakesFromAddress);
        }
        if s.open >= self.max_connections {
            if s.refusing >= self.max_refusals {
                return Admit::Close(Full::Connections);
            }
            s.refusing += 1;
            return Admit::Refuse(ticket(Kind::Refusing));
        }
        if s.handshaking.len() >= self.max_handshakes {
            // The oldest handshake makes room; it ends when its session gets the word.
            if let Some((old, pending)) = s.handshaking.pop_first() {
                if let Some(p) = s.per_ip.get_mut(&pending.ip) {
                    p.handshaking = p.handshaking.saturating_sub(1);
                }
                tracing::debug!(session = old, ip = %pending.ip, "handshake budget full; dropping the oldest");
                if let Some(evict) = pending.evict {
                    evict.do_send(Evicted);
                }
            }
        }
        s.open += 1;
        let p = s.per_ip.entry(ip).or_default();
        p.open += 1;
        p.handshaking += 1;
        s.handshaking.insert(id, Pending { ip, evict: None });
        Admit::Session(ticket(Kind::Handshaking))
    }

    /// Connections holding a slot (handshaking or joined; not refusal sessions).
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    /// Connections still handshaking.
    pub(crate) fn handshaking(&self) -> usize {
        self.lock().handshaking.len()
    }
}

impl Ticket {
    /// Whether this session is one that refuses its peer ("router full").
    pub(crate) fn refuses(&self) -> bool {
        self.kind == Kind::Refusing
    }

    /// Whether it still counts as a handshake.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.kind == Kind::Handshaking
    }

    /// How to end the session if its handshake is dropped for a newer one.
    pub(crate) fn on_evict(&self, evict: Recipient<Evicted>) {
        if let Some(p) = self.admission.lock().handshaking.get_mut(&self.id) {
            p.evict = Some(evict);
        }
    }

    /// The handshake is over (joined, observing, or failed): its handshake slot is free.
    pub(crate) fn handshake_done(&mut self) {
        if self.kind != Kind::Handshaking {
            return;
        }
        self.kind = Kind::Joined;
        let mut s = self.admission.lock();
        if s.handshaking.remove(&self.id).is_some() {
            if let Some(p) = s.per_ip.get_mut(&self.ip) {
                p.handshaking = p.handshaking.saturating_sub(1);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.handshake_done();
        let mut s = self.admission.lock();
        if self.kind == Kind::Refusing {
            s.refusing = s.refusing.saturating_sub(1);
            return;
        }
        s.open = s.open.saturating_sub(1);
        let gone = s.per_ip.get_mut(&self.ip).is_some_and(|p| {
            p.open = p.open.saturating_sub(1);
            p.open == 0 && p.handshaking == 0
        });
        if gone {
            s.per_ip.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(conns: usize, per_ip: usize, hs: usize, hs_ip: usize) -> Arc<Admission> {
        let mut c = RouterConfig::new(lanmesh_proto::Identity::generate().unwrap());
        c.max_connections = conns;
        c.max_connections_per_ip = per_ip;
        c.max_handshakes = hs;
        c.max_handshakes_per_ip = hs_ip;
        c.max_refusals = 1;
        Admission::new(&c)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn budgets_count_at_admission_and_come_back_on_drop() {
        let a = admission(3, 2, 10, 10);
        let t1 = a.admit(1, ip(1));
        let t2 = a.admit(2, ip(1));
        assert!(matches!(
            a.admit(3, ip(1)),
            Admit::Close(Full::ConnectionsFromAddress)
        ));
        let t3 = a.admit(4, ip(2));
        assert_eq!(a.open(), 3);
        let refusal = a.admit(5, ip(3));
        assert!(matches!(&refusal, Admit::Refuse(t) if t.refuses()));
        assert!(matches!(a.admit(6, ip(3)), Admit::Close(Full::Connections)));
        drop((t1, t2, t3, refusal));
        assert_eq!((a.open(), a.handshaking()), (0, 0));
        assert!(a.lock().per_ip.is_empty());
    }

    #[test]
    fn a_full_handshake_budget_drops_the_oldest_and_joined_sessions_leave_it() {
        let a = admission(100, 100, 2, 2);
        let Admit::Session(mut first) = a.admit(1, ip(1)) else {
            panic!()
        };
        let _second = a.admit(2, ip(2));
        first.handshake_done();
        assert_eq!(a.handshaking(), 1);
        let _third = a.admit(3, ip(3));
        let _fourth = a.admit(4, ip(3));
        assert_eq!(a.handshaking(), 2, "the oldest handshake made room");
        assert!(!a.lock().handshaking.contains_key(&2));
        assert!(matches!(
            a.admit(5, ip(3)),
            Admit::Close(Full::HandshakesFromAddress)
        ));
        assert_eq!(a.open(), 4);
    }
}
