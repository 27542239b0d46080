//! Requests waiting for their replies, shared by the `Peer` handles and the actor.
//!
//! A handle registers the request here and sends it through the lane, without a trip
//! through the actor's mailbox; the actor settles it when the reply (or a `Nack`)
//! arrives, expires it on its deadline tick, and fails every one when the connection
//! is lost or the peer stops.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lanmesh_proto::Name;
use tokio::sync::oneshot;

use crate::ClientError;
use crate::shared::Message as Inbound;

/// What a request's caller waits for.
pub(crate) type Reply = Result<Inbound, ClientError>;

struct Pending {
    reply: oneshot::Sender<Reply>,
    to: Name,
    timeout: Duration,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<u64, Pending>,
    /// Deadlines, soonest first; entries of settled requests are skipped when reached.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Requests {
    inner: Mutex<Inner>,
}

impl Requests {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock can leave the maps half-changed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers request `id` to `to`; the receiver gets the reply or why there is none.
    pub(crate) fn register(
        &self,
        id: u64,
        to: Name,
        timeout: Duration,
    ) -> oneshot::Receiver<Reply> {
        let (reply, rx) = oneshot::channel();
        let mut inner = self.lock();
        inner.pending.insert(id, Pending { reply, to, timeout });
        inner
            .deadlines
            .push(Reverse((Instant::now() + timeout, id)));
        rx
    }

    /// Hands request `id` its outcome. Returns `false` when no such request waits.
    pub(crate) fn settle(&self, id: u64, outcome: Reply) -> bool {
        let pending = self.lock().pending.remove(&id);
        match pending {
            Some(p) => {
                let _ = p.reply.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Drops request `id`, which never left.
    pub(crate) fn forget(&self, id: u64) {
        self.lock().pending.remove(&id);
    }

    /// Fails every request whose deadline passed by `now`.
    pub(crate) fn expire(&self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut inner = self.lock();
            while let Some(&Reverse((at, id))) = inner.deadlines.peek() {
                if at > now {
                    break;
                }
                inner.deadlines.pop();
                expired.extend(inner.pending.remove(&id));
            }
        }
        for p in expired {
            let _ = p.reply.send(Err(ClientError::RequestTimeout {
                name: p.to.to_string(),
                after: p.timeout,
            }));
        }
    }

    /// Fails every waiting request with `why`.
    pub(crate) fn fail_all(&self, why: &str) {
        let pending = {
            let mut inner = self.lock();
            inner.deadlines.clear();
            std::mem::take(&mut inner.pending)
        };
        for (_, p) in pending {
            let _ = p.reply.send(Err(ClientError::disconnected(why)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Name {
        Name::new("b").unwrap()
    }

    #[test]
    fn a_reply_reaches_its_request_once() {
        let r = Requests::default();
        let mut rx = r.register(7, name(), Duration::from_secs(5));
        assert!(
            !r.settle(8, Err(ClientError::disconnected("x"))),
            "unknown id"
        );
        assert!(r.settle(7, Err(ClientError::disconnected("first"))));
        assert!(!r.settle(7, Err(ClientError::disconnected("second"))));
        let got = rx.try_recv().unwrap().unwrap_err().to_string();
        assert!(got.contains("first"), "{got}");
    }

    #[test]
    fn only_requests_past_their_deadline_expire() {
        let r = Requests::default();
        let mut soon = r.register(1, name(), Duration::from_millis(1));
        let mut later = r.register(2, name(), Duration::from_secs(60));
        r.expire(Instant::now() + Duration::from_secs(1));
        assert!(matches!(
            soon.try_recv().unwrap(),
            Err(ClientError::RequestTimeout { .. })
        ));
        assert!(later.try_recv().is_err(), "still waiting");
        r.fail_all("gone");
        assert!(
            later
                .try_recv()
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("gone")
        );
    }
}
