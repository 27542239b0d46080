//! A lanmesh sensor for an embassy board (a skeleton to start from): one async task that
//! keeps a connection to the router over embassy-net's TCP socket and publishes a reading
//! every few seconds as an acked JSON message, with the sans-IO peer core doing the
//! protocol. The task is the whole driver: it moves bytes between the socket and
//! [`PeerCore`], wakes at the core's deadlines, and dials again when the core asks.
//!
//! The board's `main` brings what only it has: the HAL, the network driver and
//! `embassy_net::Stack`, a hardware random source, an allocator (the core needs `alloc`;
//! about 48 KiB at peak with 4 KiB records, see the README), a time driver, and the
//! thermometer:
//!
//! ```ignore
//! #[embassy_executor::task]
//! async fn lanmesh(stack: Stack<'static>) -> ! {
//!     let mut rx = [0; 8192];
//!     let mut tx = [0; 8192];
//!     let sensor = Sensor { name: "greenhouse", to: "laptop", every: Duration::from_secs(10) };
//!     sensor_task(stack, ROUTER, board_config(), &sensor, &mut rx, &mut tx, || read_ds18b20()).await
//! }
//! ```
//!
//! Not tested on hardware, nor run: `scripts/mcu.sh embassy` only builds it for
//! thumbv7em-none-eabihf, so it keeps compiling against the core and embassy-net.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use bytes::{Bytes, BytesMut};
use embassy_futures::select::{Either, select};
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, Instant as EmbassyInstant, Timer};
use embedded_io_async::Write as _;
use lanmesh_core::Instant;
use lanmesh_core::peer::{Config, PeerCore};
use lanmesh_proto::Name;
use lanmesh_proto::frame::flags;

/// What the sensor publishes, and to whom.
pub struct Sensor<'a> {
    /// Its name in the mesh (also in each reading).
    pub name: &'a str,
    /// The collector, which acknowledges each reading.
    pub to: &'a str,
    /// Time between readings.
    pub every: Duration,
}

fn now() -> Instant {
    Instant::from_millis(EmbassyInstant::now().as_millis())
}

fn at(t: Instant) -> EmbassyInstant {
    EmbassyInstant::from_millis(t.as_millis())
}

/// Runs forever: connects to `router`, joins with `config` (its handshake limits should
/// be `small_limits(4096, 16 * 1024)` or like, its `random` the board's generator), and
/// sends `read()`'s value every `sensor.every`. `rx` and `tx` are the socket's buffers.
pub async fn sensor_task(
    stack: Stack<'_>,
    router: IpEndpoint,
    config: Config,
    sensor: &Sensor<'_>,
    rx: &mut [u8],
    tx: &mut [u8],
    mut read: impl FnMut() -> f32,
) -> ! {
    let Ok(to) = Name::new(sensor.to) else {
        panic!("the collector's name breaks the naming rules");
    };
    let label = format!("{router}");
    let mut core = PeerCore::new(config);
    let mut seq: u64 = 0;
    let mut next_reading = EmbassyInstant::now();
    loop {
        let mut socket = TcpSocket::new(stack, rx, tx);
        if socket.connect(router).await.is_err() || core.connect(&label, now()).is_err() {
            Timer::after_secs(2).await;
            continue;
        }
        let mut input = BytesMut::new();
        let mut buf = [0u8; 512];
        while core.has_transport() {
            while let Some(out) = core.poll_transmit() {
                if socket.write_all(&out).await.is_err() {
                    core.transport_closed(Some(String::from("write failed")), now());
                    break;
                }
            }
            // Messages, requests and acks for the application would be handled here. A
            // lost connection (`Event::Dial`) also ends `has_transport`, so the outer
            // loop dials again.
            while core.poll_event().is_some() {}
            if core.is_running() && EmbassyInstant::now() >= next_reading {
                seq += 1;
                let text = format!(
                    r#"{{"sensor":"{}","seq":{seq},"celsius":{:.2}}}"#,
                    sensor.name,
                    read()
                );
                // A reading that cannot be queued is skipped; the next one comes on time.
                let _ = core.send_acked(&to, Bytes::from(text), flags::TEXT, now());
                next_reading += sensor.every;
                continue;
            }
            let wake = core
                .poll_timeout()
                .map_or(next_reading, |t| at(t).min(next_reading));
            match select(socket.read(&mut buf), Timer::at(wake)).await {
                Either::First(Ok(0)) | Either::First(Err(_)) => {
                    core.transport_closed(None, now());
                }
                Either::First(Ok(n)) => {
                    input.extend_from_slice(&buf[..n]);
                    core.handle_input(&mut input, now());
                }
                Either::Second(()) => {
                    if core.poll_timeout().is_some_and(|t| t <= now()) {
                        core.handle_timeout(now());
                    }
                }
            }
        }
        socket.abort();
        let _ = socket.flush().await;
    }
}
