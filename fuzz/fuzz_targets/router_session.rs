//! The router's session core after the handshake: a member that joined (Noise done, name
//! bound) sends whatever frames the input decodes to — router-only frames, forged acks,
//! stream pieces, huge ids — and the router must neither panic nor stop serving: after
//! them, A's acked send to B still arrives and settles. The whole mesh runs in memory
//! (`crates/lanmesh-core/tests/sim`), deterministically.
#![no_main]

#[path = "../../crates/lanmesh-core/tests/sim/mod.rs"]
#[allow(dead_code, unused_imports, unreachable_pub)]
mod sim;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_core::peer::Event;
use lanmesh_proto::record::put_prefixed;
use lanmesh_proto::{Connection, Frame, Frames, HandshakeConfig, Identity, Initiator, Name, RecordDecoder};
use libfuzzer_sys::fuzz_target;
use sim::Sim;

const MS: Duration = Duration::from_millis(1);

/// A member speaking the protocol by hand, joined as `name`.
fn join_raw(sim: &mut Sim, name: &str) -> (usize, Connection) {
    let link = sim.raw_link();
    let cfg = HandshakeConfig::new(Identity::generate().expect("OS randomness"), sim::MESH);
    let (init, msg1) =
        Initiator::start(&cfg, Some(Name::new(name).expect("a valid name")), Bytes::new())
            .expect("message 1");
    let mut out = BytesMut::new();
    put_prefixed(&mut out, &msg1).expect("fits");
    sim.raw_send(link, &out);
    let mut decoder = RecordDecoder::new(lanmesh_proto::limits::MAX_RECORD);
    let msg2 = loop {
        sim.step(MS);
        if let Some(r) = decoder.decode(&mut sim.links[link].raw_in).expect("a record") {
            break r;
        }
    };
    let (est, msg3) = init.read_choice(&msg2).expect("message 2");
    let mut out = BytesMut::new();
    put_prefixed(&mut out, &msg3).expect("fits");
    sim.raw_send(link, &out);
    for _ in 0..50 {
        sim.step(MS);
    }
    (link, est.connection)
}

fuzz_target!(|data: &[u8]| {
    let mut sim = Sim::new(7);
    let a = sim.config("A");
    let b = sim.config("B");
    let a = sim.add_peer(a);
    let b = sim.add_peer(b);
    sim.connect(a);
    sim.connect(b);
    let (link, mut conn) = join_raw(&mut sim, "M");
    let frames: Vec<Frame> = Frames::new(Bytes::copy_from_slice(data))
        .map_while(Result::ok)
        .take(64)
        .collect();
    for f in &frames {
        if conn.send(f).is_err() {
            break;
        }
    }
    while let Ok(Some(bytes)) = conn.poll_transmit() {
        sim.raw_send(link, &bytes);
    }
    for _ in 0..100 {
        sim.step(MS);
    }
    // The legitimate peers are not harmed by whatever M did.
    let now = sim.now;
    sim.peers[a]
        .send_acked(&Name::new("B").expect("valid"), Bytes::from_static(b"still"), 0, now)
        .expect("A can still send");
    let mut acked = false;
    let mut got = false;
    sim.run_until(20_000, MS, |sim| {
        for e in sim.take_events(a) {
            acked |= matches!(e, Event::Acked { .. });
        }
        for e in sim.take_events(b) {
            got |= matches!(&e, Event::Message(m) if &m.data[..] == b"still");
        }
        acked && got
    });
});
