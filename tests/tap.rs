//! The board client (`crates/lanmesh-embedded`: `Client::poll` over its smoltcp
//! `TcpStream`) with the smoltcp TCP/IP stack, run as a host process on a TAP device in a
//! network namespace, joining a real `lanmesh router` there.
//!
//! 1. The test makes a namespace holding a TAP device `lmtap0` (10.93.0.1/24, the kernel's
//!    side), and starts in it `lanmesh router --no-mdns --listen 10.93.0.1:7400` and a
//!    native `lanmesh listen --json` as `laptop`.
//! 2. It runs this test binary again inside the namespace (`ip netns exec`), as the
//!    ignored test [`board_over_tap`]: that process opens `lmtap0` and is the board —
//!    smoltcp's Ethernet, ARP, IPv4 and TCP at 10.93.0.2 on the raw frames, the
//!    lanmesh-embedded client on a smoltcp socket, a caller-supplied random source,
//!    compression `none`, 4 KiB records. The kernel's TCP/IP is not on the board's path;
//!    it is the router's.
//! 3. The board completes the Noise handshake, sends an acked message to `laptop` and
//!    waits for its ack, and receives an acked message a native `lanmesh send` as `desk`
//!    sends it; then a 12 KiB one (three of its 4 KiB records: the router cuts it to
//!    fit), while a 20 KiB one is refused to `desk` (the board takes 16 KiB). The router's member list says the board's session is encrypted.
//!
//! Opening a TAP device in another namespace needs `setns`, which is unsafe code; running
//! this binary under `ip netns exec` needs none. Namespaces need root: without it the test
//! is skipped with a message, unless `LANMESH_REQUIRE_NETNS=1`, where it fails. The
//! namespace (and with it the TAP device) is deleted when the test ends; nothing is
//! configured outside it.
//!
//! Host builds turn on the `std` features of lanmesh-proto and lanmesh-core (Cargo unifies
//! features), so the records here are sealed with ring rather than the RustCrypto cipher a
//! board links; the driver, the core's logic and smoltcp are the board's.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::netns::ip;
use common::proc::{BIN, Proc, test_home};
use lanmesh_embedded::tcp::TcpStream;
use lanmesh_embedded::{Client, Config, Event, Instant, small_limits};
use lanmesh_proto::{Cipher, Framing, HandshakeConfig, Identity, Name, RandomSource};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as NetDuration, Instant as NetInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// The TAP device, inside the namespace.
const TAP: &str = "lmtap0";
/// The kernel's (and the router's) address on it, and the board's.
const HOST_ADDR: [u8; 4] = [10, 93, 0, 1];
const BOARD_ADDR: [u8; 4] = [10, 93, 0, 2];
const ROUTER: &str = "10.93.0.1:7400";
/// Set (to the namespace's name) in the environment of the board process.
const BOARD_ENV: &str = "LANMESH_TAP_BOARD";
/// How long the board may take for everything.
const BOARD_DEADLINE: Duration = Duration::from_secs(20);

const BOARD_SAYS: &str = "21.5 C";
const DESK_SAYS: &str = "hello board";
/// A message three records long for the board (it takes up to 16 KiB).
const BIG: usize = 12 * 1024;

/// Hex digits with no repeats for Snappy to find: the bytes on the wire are the bytes sent.
fn hex_noise(len: usize) -> String {
    common::noise(0x9e37_79b9_7f4a_7c15, len)
        .iter()
        .map(|b| char::from(b"0123456789abcdef"[usize::from(b >> 4)]))
        .collect()
}

/// A namespace with the TAP device, deleted when dropped.
struct TapNet {
    ns: String,
}

impl TapNet {
    /// The namespace, or `None` (after saying why) if namespaces cannot be made here and
    /// are not required.
    fn new() -> Option<TapNet> {
        let ns = format!("lmtap{}", std::process::id());
        let net = TapNet { ns };
        let made = ip(&["netns", "add", &net.ns]).and_then(|()| {
            let ns = net.ns.as_str();
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "tuntap", "add", "mode", "tap", "name", TAP])?;
            let host = format!("{}/24", dotted(HOST_ADDR));
            ip(&["-n", ns, "addr", "add", &host, "dev", TAP])?;
            ip(&["-n", ns, "link", "set", TAP, "up"])
        });
        match made {
            Ok(()) => Some(net),
            Err(e) if std::env::var("LANMESH_REQUIRE_NETNS").as_deref() == Ok("1") => {
                panic!("network namespaces are required (LANMESH_REQUIRE_NETNS=1) but: {e}")
            }
            Err(e) => {
                eprintln!(
                    "skipping: cannot create a network namespace with a TAP device ({e}); run as root, or set LANMESH_REQUIRE_NETNS=1 to fail instead"
                );
                None
            }
        }
    }

    /// `lanmesh send --ack board TEXT` as `desk`, inside the namespace, run to its end.
    fn desk_sends(&self, text: &str) -> std::process::Output {
        let args = [
            "send", "--router", ROUTER, "--name", "desk", "--ack", "board", text,
        ];
        self.lanmesh(&args).output().unwrap()
    }

    /// `PROGRAM ARGS` inside the namespace, with this namespace's lanmesh state directory.
    fn command(&self, program: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(program)
            .args(args)
            .env("LANMESH_HOME", test_home().join(&self.ns));
        cmd
    }

    fn lanmesh(&self, args: &[&str]) -> Command {
        self.command(std::path::Path::new(BIN), args)
    }
}

impl Drop for TapNet {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

fn dotted(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

#[test]
fn board_on_tap_joins_router_and_exchanges_acked_messages() {
    let Some(net) = TapNet::new() else { return };
    let router =
        Proc::spawn_command(&mut net.lanmesh(&["router", "--no-mdns", "--listen", ROUTER]));
    // Its first line (the header with its key) comes once it listens.
    router.line();
    let listener = Proc::spawn_command(&mut net.lanmesh(&[
        "listen", "--router", ROUTER, "--name", "laptop", "--json", "--count", "1",
    ]));
    listener.wait_stderr("listening as");

    let me = std::env::current_exe().unwrap();
    let mut cmd = net.command(
        &me,
        &[
            "--exact",
            "board_over_tap",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ],
    );
    let board = Proc::spawn_command(cmd.env(BOARD_ENV, &net.ns));
    board.wait_stderr("board: connected");

    // The router's view of the board: a TCP session, encrypted, uncompressed.
    let peers = net
        .lanmesh(&["peers", "--router", ROUTER, "--json"])
        .output()
        .unwrap();
    assert!(
        peers.status.success(),
        "{}",
        String::from_utf8_lossy(&peers.stderr)
    );
    let peers: serde_json::Value = serde_json::from_slice(&peers.stdout).unwrap();
    let entry = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "board")
        .unwrap_or_else(|| panic!("no board among {peers}"));
    assert_eq!(entry["transport"], "tcp", "{entry}");
    assert_eq!(entry["cipher"], "chacha20poly1305", "{entry}");
    assert_eq!(entry["compression"], "none", "{entry}");

    // The board's acked message reached the native listener.
    let v: serde_json::Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["data"].as_str()),
        (Some("board"), Some(BOARD_SAYS)),
        "{v}"
    );

    // A native peer's acked message to the board: `send --ack` succeeds only once the
    // board's client has acknowledged it.
    let sent = net.desk_sends(DESK_SAYS);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    board.wait_stderr(&format!("board: received desk: {DESK_SAYS}"));

    // The board declared 4 KiB records and 16 KiB messages in its offer. A message over
    // 16 KiB is refused to its sender by the router; one of 12 KiB reaches the board cut
    // into chunks that fit its records.
    let too_big = hex_noise(20 * 1024);
    let refused = net.desk_sends(&too_big);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "20 KiB to a 16 KiB board was acked"
    );
    assert!(stderr.contains("takes no message that large"), "{stderr}");
    let big = hex_noise(BIG);
    let sent = net.desk_sends(&big);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    board.wait_stderr(&format!("board: received desk: {BIG} bytes"));
    let status = wait_exit(board, BOARD_DEADLINE);
    assert!(status.success(), "the board process failed: {status}");
}

fn wait_exit(mut p: Proc, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the board did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The board: runs only inside the namespace, started by the test above.
#[test]
#[ignore = "the board process of board_on_tap_joins_router_and_exchanges_acked_messages"]
fn board_over_tap() {
    if std::env::var_os(BOARD_ENV).is_none() {
        eprintln!("board_over_tap runs inside the namespace the TAP test makes; nothing to do");
        return;
    }
    run_board();
}

/// The board's random source: what a TRNG register would give, here the kernel's.
fn board_random(buf: &mut [u8]) -> bool {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

fn board_client() -> Client {
    let random = RandomSource::from_fn(board_random);
    let identity = Identity::generate_from(random).unwrap();
    let mut handshake = HandshakeConfig::new(identity, "lanmesh");
    // What a board without std offers: 4 KiB records, ChaCha20-Poly1305, no Snappy.
    handshake.limits = small_limits(4096, 16 * 1024);
    handshake.framing = Framing::LengthPrefixed;
    handshake.cipher = Cipher::ChaCha20Poly1305;
    handshake.compression = false;
    let mut config = Config::new(Some(Name::new("board").unwrap()), handshake);
    config.random = random;
    Client::new(config)
}

fn run_board() {
    let start = std::time::Instant::now();
    let ms = || start.elapsed().as_millis() as u64;

    let mut device = TunTapInterface::new(TAP, Medium::Ethernet).unwrap();
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([
        0x02, 0, 0, 0, 0, 0x42,
    ])));
    iface_config.random_seed = u64::from_le_bytes(*b"lanmesh!");
    let mut iface = Interface::new(iface_config, &mut device, NetInstant::from_millis(0));
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(
                IpAddress::from(std::net::Ipv4Addr::from(BOARD_ADDR)),
                24,
            ))
            .unwrap();
    });
    let mut storage = [SocketStorage::EMPTY; 1];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 8192]),
        tcp::SocketBuffer::new(vec![0; 8192]),
    );
    let handle = sockets.add(socket);
    let router = (IpAddress::from(std::net::Ipv4Addr::from(HOST_ADDR)), 7400);
    sockets
        .get_mut::<tcp::Socket>(handle)
        .connect(iface.context(), router, 49152)
        .unwrap();

    let mut client = board_client();
    client.connect(ROUTER, Instant::from_millis(ms())).unwrap();

    let laptop = Name::new("laptop").unwrap();
    let mut sent = None;
    let mut acked = false;
    let mut received = 0;
    while !(acked && received == 2) {
        assert!(
            start.elapsed() < BOARD_DEADLINE,
            "board: not done within {BOARD_DEADLINE:?} (acked {acked}, received {received})"
        );
        let now = ms();
        let net_now = NetInstant::from_millis(now as i64);
        iface.poll(net_now, &mut device, &mut sockets);
        let mut stream = TcpStream(sockets.get_mut::<tcp::Socket>(handle));
        if let Err(e) = client.poll(&mut stream, Instant::from_millis(now)) {
            panic!("board: {e}");
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::Connected => {
                    eprintln!("board: connected");
                    if sent.is_none() {
                        let data = Bytes::from_static(BOARD_SAYS.as_bytes());
                        let flags = lanmesh_proto::frame::flags::TEXT;
                        let id = client.core().send_acked(
                            &laptop,
                            data,
                            flags,
                            Instant::from_millis(now),
                        );
                        sent = Some(id.unwrap());
                    }
                }
                Event::Acked { id } if Some(id) == sent => {
                    eprintln!("board: acked");
                    acked = true;
                }
                Event::Message(m) => {
                    match m.text() {
                        Some(t) if t.len() < 64 => eprintln!("board: received {}: {t}", m.from),
                        _ => eprintln!("board: received {}: {} bytes", m.from, m.data.len()),
                    }
                    received += 1;
                }
                Event::SendFailed { id, error } => panic!("board: send {id} failed: {error}"),
                Event::Dial => panic!("board: the connection to the router was lost"),
                _ => {}
            }
        }
        // Send what the client just wrote, then sleep until a frame arrives or either
        // stack has a deadline.
        iface.poll(net_now, &mut device, &mut sockets);
        let mut delay = iface
            .poll_delay(net_now, &sockets)
            .unwrap_or(NetDuration::from_millis(100))
            .min(NetDuration::from_millis(100));
        if let Some(d) = client.poll_delay(Instant::from_millis(now)) {
            delay = delay.min(NetDuration::from_millis(d.as_millis() as u64));
        }
        smoltcp::phy::wait(device.as_raw_fd(), Some(delay)).unwrap();
    }
}
