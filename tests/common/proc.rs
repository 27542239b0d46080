//! Child processes of the `lanmesh` binary for end-to-end tests: killed when dropped,
//! their output lines forwarded to channels so tests wait for lines, not for time.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lanmesh");

/// `lanmesh ARGS` in the tests' home, stdin closed, run to its end.
pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LANMESH_HOME", test_home())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Starts `lanmesh router --no-mdns --no-http --listen LISTEN`; returns it and the TCP
/// address it printed.
pub(crate) fn router(listen: &str) -> (Proc, String) {
    let p = Proc::spawn(&["router", "--no-mdns", "--no-http", "--listen", listen]);
    let addr = p.router_addr();
    (p, addr)
}

/// `lanmesh router` on 127.0.0.1 without mDNS, with `extra` arguments (its gateway
/// stays off unless they give `--http`). Returns the process, the TCP address it printed
/// and, with a gateway, its URL (`http://127.0.0.1:PORT`, no trailing slash).
pub(crate) fn router_with(extra: &[&str]) -> (Proc, String, Option<String>) {
    let mut args = vec!["router", "--no-mdns", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let gateway = extra.contains(&"--http");
    if !gateway && !extra.contains(&"--no-http") {
        args.push("--no-http");
    }
    let p = Proc::spawn(&args);
    let header = p.line();
    assert!(header.starts_with("lanmesh router"), "{header}");
    let (mut tcp, mut http) = (None, None);
    while tcp.is_none() || (gateway && http.is_none()) {
        let l = p.line();
        let l = l.trim();
        if let Some(a) = l.strip_prefix("tcp") {
            tcp = Some(a.trim().to_owned());
        } else if let Some(a) = l.strip_prefix("http") {
            http = Some(a.trim().trim_end_matches('/').to_owned());
        }
    }
    (p, tcp.unwrap(), http)
}

/// [`router_with`] its gateway on a free port: the process, its TCP address, its URL.
pub(crate) fn gateway_router() -> (Proc, String, String) {
    let (p, tcp, http) = router_with(&["--http", "127.0.0.1:0"]);
    (
        p,
        tcp,
        http.expect("the router printed its gateway's address"),
    )
}

/// Resident memory of process `pid` in KiB (`VmRSS` in /proc/PID/status).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The state directory (keys, pinned router keys, name bindings) of the `lanmesh`
/// processes this test starts: one per test process, like one machine's user, so tests
/// never share keys or bindings with each other or with the real user.
pub(crate) fn test_home() -> std::path::PathBuf {
    static HOME: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lanmesh-test-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    })
    .clone()
}

/// A child process killed when dropped, with its output lines forwarded to channels.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) stdout: mpsc::Receiver<String>,
    pub(crate) stderr: mpsc::Receiver<String>,
}

impl Proc {
    /// Runs `lanmesh ARGS` with this test's state directory ([`test_home`]).
    pub(crate) fn spawn(args: &[&str]) -> Proc {
        Self::spawn_command(
            Command::new(BIN)
                .args(args)
                .env("LANMESH_HOME", test_home()),
        )
    }

    /// Runs `cmd` (for example `ip netns exec NS lanmesh ...`) with piped output.
    pub(crate) fn spawn_command(cmd: &mut Command) -> Proc {
        // Never the real user's keys or pins: this test's state directory unless the
        // caller chose one.
        if !cmd.get_envs().any(|(k, _)| k == "LANMESH_HOME") {
            cmd.env("LANMESH_HOME", test_home());
        }
        Self::start(cmd.stdin(Stdio::null()))
    }

    /// Runs `cmd` with piped output and input; writing to the returned handle types into
    /// it, dropping it ends its input.
    pub(crate) fn spawn_with_stdin(cmd: &mut Command) -> (Proc, std::process::ChildStdin) {
        let mut p = Self::start(cmd.stdin(Stdio::piped()));
        let stdin = p.child.stdin.take().unwrap();
        (p, stdin)
    }

    fn start(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// The next stdout line, waiting up to 10 s.
    /// Reads a router's first lines: its header, then `tcp ADDR`; returns ADDR.
    pub(crate) fn router_addr(&self) -> String {
        let header = self.line();
        assert!(header.starts_with("lanmesh router"), "{header}");
        let tcp = self.line();
        tcp.trim().strip_prefix("tcp").unwrap().trim().to_owned()
    }

    pub(crate) fn line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("a line on stdout")
    }

    /// Waits for a stdout line containing `needle`, skipping others.
    pub(crate) fn wait_stdout(&self, needle: &str) {
        Self::wait_line(&self.stdout, needle, "stdout");
    }

    /// Waits for a stderr line containing `needle`.
    pub(crate) fn wait_stderr(&self, needle: &str) {
        Self::wait_line(&self.stderr, needle, "stderr");
    }

    fn wait_line(lines: &mpsc::Receiver<String>, needle: &str, which: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let l = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {needle:?} on {which} within 10 s"));
            if l.contains(needle) {
                return;
            }
        }
    }

    pub(crate) fn wait(mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("process did not exit within 10 s");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}
