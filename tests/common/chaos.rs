//! A TCP proxy for tests that breaks connections on purpose, reproducibly: from a seed it
//! cuts each connection after a random number of bytes, splits what it forwards into
//! random small writes, and now and then holds a write back for a few milliseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the proxy does to each connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chaos {
    /// A connection is cut after a number of bytes (both directions together) drawn
    /// uniformly from this range.
    pub(crate) cut_after: (u64, u64),
    /// Each forwarded write is at most this long.
    pub(crate) max_fragment: usize,
    /// One write in this many is held back for 1–3 ms.
    pub(crate) stall_one_in: u64,
}

/// splitmix64: small, seedable, good enough to pick cut points.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A running proxy; it stops with the test's runtime.
pub(crate) struct ChaosProxy {
    pub(crate) addr: SocketAddr,
    cuts: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    control: Arc<Control>,
}

/// Cuts on demand, and refusing new connections for a while.
#[derive(Default)]
struct Control {
    cut_all: Notify,
    refusing: AtomicBool,
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 and forwards every connection to `upstream`.
    pub(crate) async fn start(upstream: SocketAddr, seed: u64, chaos: Chaos) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let control = Arc::new(Control::default());
        let (c, n, ctl) = (cuts.clone(), connections.clone(), control.clone());
        tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            while let Ok((down, _)) = listener.accept().await {
                if ctl.refusing.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(up) = TcpStream::connect(upstream).await else {
                    continue;
                };
                n.fetch_add(1, Ordering::Relaxed);
                let conn_rng = Rng::new(rng.next());
                tokio::spawn(proxy_one(down, up, conn_rng, chaos, c.clone(), ctl.clone()));
            }
        });
        Self {
            addr,
            cuts,
            connections,
            control,
        }
    }

    /// Cuts every open connection now.
    pub(crate) fn cut_all(&self) {
        self.control.cut_all.notify_waiters();
    }

    /// Closes new connections at once (`true`) or forwards them again (`false`).
    pub(crate) fn refuse(&self, on: bool) {
        self.control.refusing.store(on, Ordering::Relaxed);
    }

    /// Connections cut so far.
    pub(crate) fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

async fn proxy_one(
    down: TcpStream,
    up: TcpStream,
    mut rng: Rng,
    chaos: Chaos,
    cuts: Arc<AtomicU64>,
    control: Arc<Control>,
) {
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let budget = Arc::new(AtomicU64::new(
        rng.range(chaos.cut_after.0, chaos.cut_after.1),
    ));
    let cut = Arc::new(Notify::new());
    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    let a = pump(
        dr,
        uw,
        Rng::new(rng.next()),
        chaos,
        budget.clone(),
        cut.clone(),
    );
    let b = pump(ur, dw, Rng::new(rng.next()), chaos, budget, cut.clone());
    // Whichever way ends first ends both: a cut, or one side closing.
    let cut_happened = tokio::select! {
        r = a => r,
        r = b => r,
        _ = control.cut_all.notified() => true,
    };
    if cut_happened {
        cuts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Copies one direction in random fragments until the shared byte budget runs out
/// (returns true: a cut) or the source closes (false).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rng: Rng,
    chaos: Chaos,
    budget: Arc<AtomicU64>,
    cut: Arc<Notify>,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            },
            _ = cut.notified() => return true,
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            let left = budget.load(Ordering::Relaxed);
            let len = (rng.range(1, chaos.max_fragment as u64) as usize).min(data.len());
            if (len as u64) >= left {
                // Forward part of it, then cut: the other side sees a torn record.
                let _ = to.write_all(&data[..left as usize]).await;
                budget.store(0, Ordering::Relaxed);
                cut.notify_waiters();
                return true;
            }
            budget.fetch_sub(len as u64, Ordering::Relaxed);
            if chaos.stall_one_in > 0 && rng.next() % chaos.stall_one_in == 0 {
                tokio::time::sleep(Duration::from_millis(rng.range(1, 3))).await;
            }
            if to.write_all(&data[..len]).await.is_err() {
                return false;
            }
            data = &data[len..];
        }
    }
}
