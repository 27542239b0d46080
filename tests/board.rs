//! The `lanmesh` binary built for a board (`scripts/cross.sh`, `just cross aarch64`) run
//! under qemu-user next to the x86 `lanmesh` of this build, on 127.0.0.1: the board as a
//! listener and as a sender against an x86 router, encrypted (a tap between them sees no
//! plaintext), acked, a file each way, and rejoining a router that was killed and started
//! again; and the Pi sensor example (`examples/board`), in-process on x86 and cross-built
//! under qemu, publishing to an x86 collector.
//!
//! The board binary is `$LANMESH_CROSS_BIN`, else
//! `target/aarch64-unknown-linux-gnu/release/lanmesh` when it is newer than this build's
//! x86 binary; its ELF header says which qemu
//! runs it (`qemu-aarch64` or `qemu-arm`, with Debian's cross sysroot under /usr). When
//! it or qemu is missing the tests say so and pass, unless `LANMESH_REQUIRE_CROSS=1` (which
//! `scripts/test.sh` sets, having built it), which makes that a failure. qemu-user translates the board's instructions on
//! this machine's kernel: it shows the binary is right for the target, not how a real
//! board's network or clock behave.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../examples/board/main.rs"]
mod pi_sensor;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proc::{BIN, Proc, router, rss_kib, test_home};

/// The board binary and the qemu-user command that runs it.
struct Board {
    bin: PathBuf,
    qemu: &'static str,
    sysroot: &'static str,
}

impl Board {
    /// The board binary, or `None` (after saying why) when the tests cannot run here.
    fn find() -> Option<Board> {
        let chosen = std::env::var_os("LANMESH_CROSS_BIN").map(PathBuf::from);
        let found = match chosen {
            Some(bin) => Self::describe(&bin),
            None => {
                let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/aarch64-unknown-linux-gnu/release/lanmesh");
                Self::not_stale(&bin).and_then(|()| Self::describe(&bin))
            }
        };
        let required = std::env::var("LANMESH_REQUIRE_CROSS").is_ok_and(|v| v == "1");
        match found {
            Ok(board) => Some(board),
            Err(why) if required => panic!("LANMESH_REQUIRE_CROSS=1 but {why}"),
            Err(why) => {
                eprintln!("skipped: {why} (build it with `just cross aarch64`)");
                None
            }
        }
    }

    /// A board binary found by default, rather than named, may be left from an older
    /// tree (and then fail for that reason): one older than the x86 binary of this build
    /// is not used. A binary named by `LANMESH_CROSS_BIN` is used as it is.
    fn not_stale(bin: &Path) -> Result<(), String> {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (modified(bin), modified(Path::new(BIN))) {
            (Some(board), Some(x86)) if board < x86 => Err(format!(
                "{} is older than this build's x86 binary",
                bin.display()
            )),
            _ => Ok(()),
        }
    }

    fn describe(bin: &Path) -> Result<Board, String> {
        let mut header = [0u8; 20];
        std::fs::File::open(bin)
            .and_then(|mut f| f.read_exact(&mut header))
            .map_err(|e| format!("no board binary at {}: {e}", bin.display()))?;
        if &header[..4] != b"\x7fELF" {
            return Err(format!("{} is not an ELF binary", bin.display()));
        }
        // e_machine, little-endian on both targets.
        let (qemu, sysroot) = match u16::from_le_bytes([header[18], header[19]]) {
            183 => ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
            40 => ("qemu-arm", "/usr/arm-linux-gnueabihf"),
            other => return Err(format!("{} is for ELF machine {other}", bin.display())),
        };
        let runs = Command::new(qemu)
            .args(["-L", sysroot])
            .arg(bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {qemu} (apt-get install qemu-user): {e}"))?;
        if !runs.status.success() {
            return Err(format!(
                "{} --version fails under {qemu}: {}",
                bin.display(),
                String::from_utf8_lossy(&runs.stderr)
            ));
        }
        Ok(Board {
            bin: bin.to_owned(),
            qemu,
            sysroot,
        })
    }

    /// `lanmesh ARGS` on the board, with the board's own state directory (its own key
    /// and pinned router keys), as on a separate machine.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.qemu);
        cmd.args(["-L", self.sysroot])
            .arg(&self.bin)
            .args(args)
            .env("LANMESH_HOME", test_home().join("board"))
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Proc {
        Proc::spawn_command(&mut self.command(args))
    }

    /// The Pi sensor example built for the board next to the binary
    /// (`target/TRIPLE/PROFILE/examples/board`), run under qemu as `board ARGS`.
    fn spawn_sensor(&self, args: &[&str]) -> Proc {
        let sensor = self.bin.with_file_name("examples").join("board");
        assert!(
            sensor.is_file(),
            "no sensor example at {} (scripts/cross.sh builds it with the binary)",
            sensor.display()
        );
        let mut cmd = Command::new(self.qemu);
        cmd.args(["-L", self.sysroot])
            .arg(sensor)
            .args(args)
            .env("LANMESH_HOME", test_home().join("board"));
        Proc::spawn_command(&mut cmd)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

/// `lanmesh ARGS` on x86 (the laptop), run to its end.
fn laptop(args: &[&str]) -> Output {
    common::proc::run(args)
}

fn assert_ok(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what} failed: {err}");
    err
}

/// The peers the router at `at` lists, as `peers --json` on x86 prints them.
fn peers(at: &str) -> Vec<serde_json::Value> {
    let o = laptop(&["peers", "--router", at, "--json"]);
    assert_ok(&o, "peers");
    serde_json::from_slice(&o.stdout).unwrap()
}

fn listed(at: &str, name: &str) -> Option<serde_json::Value> {
    peers(at).into_iter().find(|p| p["name"] == name)
}

/// A TCP relay on 127.0.0.1 that keeps a copy of every byte it forwards, both ways: what
/// an observer on the LAN would see.
struct Tap {
    addr: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    fn start(upstream: &str) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (upstream, log) = (upstream.to_owned(), seen.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let (Ok(down), Ok(up)) = (down, TcpStream::connect(&upstream)) else {
                    continue;
                };
                Self::pipe(
                    down.try_clone().unwrap(),
                    up.try_clone().unwrap(),
                    log.clone(),
                );
                Self::pipe(up, down, log.clone());
            }
        });
        Tap { addr, seen }
    }

    fn pipe(mut from: TcpStream, mut to: TcpStream, log: Arc<Mutex<Vec<u8>>>) {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }

    /// How many bytes went through, and whether `needle` was among them in the clear.
    fn saw(&self, needle: &[u8]) -> (usize, bool) {
        let seen = self.seen.lock().unwrap();
        (seen.len(), seen.windows(needle.len()).any(|w| w == needle))
    }
}

/// A fresh directory under this test's home.
fn dir(name: &str) -> PathBuf {
    let d = test_home().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A file of `len` incompressible bytes with `marker` written in the clear at a few
/// places, so a tap would find it if the transfer were not encrypted.
fn file_with_marker(path: &Path, len: usize, marker: &[u8]) -> Vec<u8> {
    let mut data = common::noise(0xb0a2d, len);
    for at in [0, len / 2, len - marker.len()] {
        data[at..at + marker.len()].copy_from_slice(marker);
    }
    std::fs::write(path, &data).unwrap();
    data
}

/// Reads one `listen --json` line describing a received file and returns the file.
fn saved_file(line: &str, from: &str, name: &str, len: usize) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["file"].as_str()),
        (Some(from), Some(name))
    );
    assert_eq!(v["bytes"].as_u64(), Some(len as u64));
    std::fs::read(v["path"].as_str().unwrap()).unwrap()
}

const FILE_BYTES: usize = 3 * 1024 * 1024 + 17;

#[test]
fn a_board_listener_gets_encrypted_acked_messages_and_a_file() {
    let Some(board) = Board::find() else { return };
    let (_router, at) = router("127.0.0.1:0");
    let tap = Tap::start(&at);
    let inbox = dir("board-inbox");
    let listener = board.spawn(&[
        "listen",
        "--router",
        &tap.addr,
        "--name",
        "pi",
        "--json",
        "--save-dir",
        inbox.to_str().unwrap(),
    ]);
    listener.wait_stderr("listening as");
    let pi = listed(&at, "pi").expect("the board is a member");
    assert_eq!(
        (pi["transport"].as_str(), pi["cipher"].as_str()),
        (Some("tcp"), Some("chacha20poly1305"))
    );

    let secret = "the greenhouse door code is 4711";
    let err = assert_ok(
        &laptop(&[
            "send", "--router", &at, "--name", "laptop", "--ack", "pi", secret,
        ]),
        "send --ack to the board",
    );
    assert!(err.contains("acknowledged by \"pi\""), "{err}");
    let v: serde_json::Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["data"].as_str()),
        (Some("laptop"), Some(secret))
    );

    let outbox = dir("laptop-outbox");
    let sent = file_with_marker(&outbox.join("photo.bin"), FILE_BYTES, secret.as_bytes());
    let path = outbox.join("photo.bin");
    assert_ok(
        &laptop(&[
            "send",
            "--router",
            &at,
            "--name",
            "laptop",
            "--file",
            path.to_str().unwrap(),
            "pi",
        ]),
        "send --file to the board",
    );
    let got = saved_file(&listener.line(), "laptop", "photo.bin", FILE_BYTES);
    assert!(got == sent, "the board saved other bytes than were sent");

    let (bytes, clear) = tap.saw(secret.as_bytes());
    assert!(
        bytes > FILE_BYTES,
        "only {bytes} bytes went through the tap"
    );
    assert!(!clear, "the secret crossed the wire in the clear");
}

#[test]
fn a_board_sender_gets_its_acks_and_sends_a_file() {
    let Some(board) = Board::find() else { return };
    let (_router, at) = router("127.0.0.1:0");
    let tap = Tap::start(&at);
    let inbox = dir("laptop-inbox");
    let listener = Proc::spawn(&[
        "listen",
        "--router",
        &at,
        "--name",
        "laptop",
        "--json",
        "--save-dir",
        inbox.to_str().unwrap(),
    ]);
    listener.wait_stderr("listening as");

    let reading = "{\"sensor\":\"greenhouse\",\"celsius\":23.5}";
    let err = assert_ok(
        &board.run(&[
            "send", "--router", &tap.addr, "--name", "pi", "--ack", "laptop", reading,
        ]),
        "send --ack from the board",
    );
    assert!(err.contains("acknowledged by \"laptop\""), "{err}");
    let v: serde_json::Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["data"].as_str()),
        (Some("pi"), Some(reading))
    );

    // The board lists the mesh as x86 does.
    let o = board.run(&["peers", "--router", &tap.addr, "--json"]);
    assert_ok(&o, "peers on the board");
    let seen: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let laptop_entry = seen.iter().find(|p| p["name"] == "laptop").unwrap();
    assert_eq!(laptop_entry["cipher"], "chacha20poly1305");

    let outbox = dir("board-outbox");
    let path = outbox.join("log.bin");
    let sent = file_with_marker(&path, FILE_BYTES, reading.as_bytes());
    let err = assert_ok(
        &board.run(&[
            "send",
            "--router",
            &tap.addr,
            "--name",
            "pi",
            "--file",
            path.to_str().unwrap(),
            "laptop",
        ]),
        "send --file from the board",
    );
    assert!(
        err.contains("the recipient confirmed the whole file"),
        "{err}"
    );
    let got = saved_file(&listener.line(), "pi", "log.bin", FILE_BYTES);
    assert!(
        got == sent,
        "the laptop saved other bytes than the board sent"
    );

    let (bytes, clear) = tap.saw(reading.as_bytes());
    assert!(
        bytes > FILE_BYTES,
        "only {bytes} bytes went through the tap"
    );
    assert!(!clear, "the reading crossed the wire in the clear");
}

#[test]
fn a_board_listener_rejoins_a_router_that_was_killed_and_restarted() {
    let Some(board) = Board::find() else { return };
    let (mut first, at) = router("127.0.0.1:0");
    let listener = board.spawn(&["listen", "--router", &at, "--name", "pi", "--count", "2"]);
    listener.wait_stderr("listening as");
    assert_ok(
        &laptop(&[
            "send", "--router", &at, "--name", "laptop", "--ack", "pi", "before",
        ]),
        "send before the crash",
    );
    assert_eq!(listener.line(), "laptop: before");

    // No goodbye: the router dies as in a power cut, and comes back on the same port
    // with the same state (key and name bindings).
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let (_second, again) = router(&at);
    assert_eq!(again, at);

    let start = Instant::now();
    while listed(&at, "pi").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the board did not rejoin within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ok(
        &laptop(&[
            "send", "--router", &at, "--name", "laptop", "--ack", "pi", "after",
        ]),
        "send after the restart",
    );
    assert_eq!(listener.line(), "laptop: after");
    assert!(listener.wait().success(), "listen --count 2 exits 0");
}

/// A board's sysfs as the sensor example reads it: the SoC at 47.236 °C, one DS18B20 at
/// 21.875 °C, one whose CRC failed (left out), and the bus master (not a thermometer).
fn fake_sysfs() -> PathBuf {
    let sys = dir("sysfs");
    let write = |path: &str, text: &str| {
        let path = sys.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("class/thermal/thermal_zone0/temp", "47236\n");
    write(
        "bus/w1/devices/28-0316a2795aff/w1_slave",
        "5e 01 4b 46 7f ff 0c 10 3b : crc=3b YES\n5e 01 4b 46 7f ff 0c 10 3b t=21875\n",
    );
    write(
        "bus/w1/devices/28-0000075b2a1c/w1_slave",
        "50 05 4b 46 7f ff 0c 10 1c : crc=ff NO\n50 05 4b 46 7f ff 0c 10 1c t=85000\n",
    );
    write(
        "bus/w1/devices/w1_bus_master1/w1_master_slaves",
        "28-0316a2795aff\n",
    );
    sys
}

/// Reads the next reading the collector (`listen --json`) got and checks it is the
/// sensor's reading number `seq`, with what [`fake_sysfs`] holds.
fn assert_reading(collector: &Proc, seq: u64) -> serde_json::Value {
    let line: serde_json::Value = serde_json::from_str(&collector.line()).unwrap();
    assert_eq!(line["from"], "greenhouse", "{line}");
    let reading: serde_json::Value =
        serde_json::from_str(line["data"].as_str().expect("a text message")).unwrap();
    assert_eq!(
        reading,
        serde_json::json!({
            "sensor": "greenhouse",
            "seq": seq,
            "unix_ms": reading["unix_ms"],
            "soc_celsius": 47.236,
            "probes": { "28-0316a2795aff": 21.875 },
        })
    );
    assert!(reading["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    reading
}

/// A collector on x86: `lanmesh listen --json` as `laptop`.
fn collector(at: &str) -> Proc {
    let p = Proc::spawn(&["listen", "--router", at, "--name", "laptop", "--json"]);
    p.wait_stderr("listening as");
    p
}

#[test]
fn the_pi_sensor_example_publishes_acked_readings() {
    let (_router, at) = router("127.0.0.1:0");
    let laptop = collector(&at);
    let sysfs = fake_sysfs();
    let opts = <pi_sensor::Options as clap::Parser>::parse_from([
        "board",
        "--router",
        &at,
        "--name",
        "greenhouse",
        "--to",
        "laptop",
        "--every",
        "0.1",
        "--count",
        "3",
        "--sysfs",
        sysfs.to_str().unwrap(),
    ]);
    pi_sensor::run(opts).expect("the sensor runs to its count");
    for seq in 1..=3 {
        assert_reading(&laptop, seq);
    }
}

#[test]
fn the_pi_sensor_example_runs_on_the_board_and_answers_latest() {
    let Some(board) = Board::find() else { return };
    let (_router, at) = router("127.0.0.1:0");
    let laptop = collector(&at);
    let sysfs = fake_sysfs();
    let sensor = board.spawn_sensor(&[
        "--router",
        &at,
        "--name",
        "greenhouse",
        "--to",
        "laptop",
        "--every",
        "0.2",
        "--sysfs",
        sysfs.to_str().unwrap(),
    ]);
    sensor.wait_stderr("publishing every");
    for seq in 1..=3 {
        assert_reading(&laptop, seq);
    }
    // An x86 peer asks the board for its last reading.
    let asker = lanmesh::blocking::Peer::connect("dashboard", &at).unwrap();
    let reply = asker
        .request("greenhouse", &b"latest?"[..], Duration::from_secs(10))
        .unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(latest["sensor"], "greenhouse");
    assert!(latest["seq"].as_u64().unwrap() >= 3, "{latest}");
    assert_eq!(latest["probes"]["28-0316a2795aff"], 21.875);
}

/// Idle memory of the board binary as a listener under qemu next to the x86 binary's, as
/// one JSON line on stdout (`scripts/cross.sh ARCH --bench` writes it to bench/results/). The
/// board's figure is the qemu process's RSS: the emulator and its translated code are
/// counted with the program.
#[test]
#[ignore = "a measurement: run by scripts/bench-boards.sh"]
fn idle_rss_of_a_board_listener_under_qemu() {
    let Some(board) = Board::find() else { return };
    let (_router, at) = router("127.0.0.1:0");
    let on_board = board.spawn(&["listen", "--router", &at, "--name", "pi"]);
    on_board.wait_stderr("listening as");
    let on_x86 = Proc::spawn(&["listen", "--router", &at, "--name", "laptop"]);
    on_x86.wait_stderr("listening as");
    // One acked message each, so both have run the whole receive path once.
    for to in ["pi", "laptop"] {
        assert_ok(
            &laptop(&[
                "send", "--router", &at, "--name", "probe", "--ack", to, "hi",
            ]),
            "send",
        );
    }
    assert_eq!(on_board.line(), "probe: hi");
    assert_eq!(on_x86.line(), "probe: hi");
    // Idle: sample for 5 s after the last message and keep the largest figure.
    let (mut board_kib, mut x86_kib) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        board_kib = board_kib.max(rss_kib(on_board.child.id()).unwrap());
        x86_kib = x86_kib.max(rss_kib(on_x86.child.id()).unwrap());
        std::thread::sleep(Duration::from_millis(250));
    }
    let row = serde_json::json!({
        "binary": board.bin.display().to_string(),
        "qemu": board.qemu,
        "board_listener_qemu_rss_kib": board_kib,
        "x86_listener_rss_kib": x86_kib,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "BOARD-RSS {row}").unwrap();
}
