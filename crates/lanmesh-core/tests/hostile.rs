//! Attacks on the cores in a simulated mesh, as a member or a stranger on the LAN would
//! make them with a raw connection: forged acknowledgements, nacks and replies, frames a
//! client may not send, junk before and after the handshake. Each test asserts what the
//! legitimate peers see.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_core::peer::Event;
use lanmesh_core::{ClientError, Status};
use lanmesh_proto::frame::{Message, flags};
use lanmesh_proto::record::put_prefixed;
use lanmesh_proto::{
    Connection, Frame, HandshakeConfig, Identity, Initiator, NackReason, Name, RecordDecoder,
};
use sim::Sim;

const MS: Duration = Duration::from_millis(1);

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// A member speaking the protocol by hand: it can send any frame.
struct Raw {
    link: usize,
    conn: Connection,
    decoder: RecordDecoder,
}

impl Raw {
    fn join(sim: &mut Sim, as_name: &str) -> Self {
        let link = sim.raw_link();
        let cfg = HandshakeConfig::new(Identity::generate().unwrap(), sim::MESH);
        let (init, msg1) = Initiator::start(&cfg, Some(name(as_name)), Bytes::new()).unwrap();
        let mut out = BytesMut::new();
        put_prefixed(&mut out, &msg1).unwrap();
        sim.raw_send(link, &out);
        let mut decoder = RecordDecoder::new(lanmesh_proto::limits::MAX_RECORD);
        let msg2 = loop {
            sim.step(MS);
            if let Some(r) = decoder.decode(&mut sim.links[link].raw_in).unwrap() {
                break r;
            }
        };
        let (est, msg3) = init.read_choice(&msg2).unwrap();
        let mut out = BytesMut::new();
        put_prefixed(&mut out, &msg3).unwrap();
        sim.raw_send(link, &out);
        let mut raw = Self {
            link,
            conn: est.connection,
            decoder,
        };
        let frames = raw.wait_for(sim, |f| matches!(f, Frame::PeerList { last: true, .. }));
        assert!(frames.iter().any(|f| matches!(f, Frame::Welcome { .. })));
        raw
    }

    fn send(&mut self, sim: &mut Sim, frames: &[Frame]) {
        for f in frames {
            self.conn.send(f).unwrap();
        }
        while let Some(b) = self.conn.poll_transmit().unwrap() {
            sim.raw_send(self.link, &b);
        }
    }

    /// Frames received so far.
    fn frames(&mut self, sim: &mut Sim) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(r) = self
            .decoder
            .decode(&mut sim.links[self.link].raw_in)
            .unwrap()
        {
            out.extend(self.conn.open_owned(r).unwrap().map(Result::unwrap));
        }
        out
    }

    fn wait_for(&mut self, sim: &mut Sim, mut want: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            sim.step(MS);
            let got = self.frames(sim);
            let done = got.iter().any(&mut want);
            seen.extend(got);
            if done {
                return seen;
            }
        }
        panic!("never came; saw {seen:?}");
    }
}

/// A and C in the mesh, C's connection cut (its session is parked, holding its name), M
/// a member speaking by hand.
fn mesh_with_c_away() -> (Sim, usize, usize, Raw) {
    let mut sim = Sim::new(sim::seed(11));
    let a = sim.config("A");
    let c = sim.config("C");
    let a = sim.add_peer(a);
    let c = sim.add_peer(c);
    sim.connect(a);
    sim.connect(c);
    let m = Raw::join(&mut sim, "M");
    // C drops off and stays off a while (its redial is held back by the backoff).
    sim.cut(c);
    sim.step(MS);
    assert!(matches!(sim.peers[c].status(), Status::Reconnecting { .. }));
    (sim, a, c, m)
}

#[test]
fn a_member_cannot_forge_an_ack_or_a_nack_for_another_peer() {
    let (mut sim, a, c, mut m) = mesh_with_c_away();
    let now = sim.now;
    let id = sim.peers[a]
        .send_acked(&name("C"), Bytes::from_static(b"for C only"), 0, now)
        .unwrap();
    sim.step(MS);
    // M guesses the id (they are small and predictable) and answers for C.
    m.send(
        &mut sim,
        &[
            Frame::Ack {
                peer: name("A"),
                id,
            },
            Frame::Nack {
                peer: name("A"),
                id,
                reason: NackReason::UnknownPeer,
            },
        ],
    );
    for _ in 0..50 {
        sim.step(MS);
    }
    let events = sim.take_events(a);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Acked { .. } | Event::SendFailed { .. })),
        "a forged answer settled the send: {events:?}"
    );
    assert_eq!(sim.peers[a].pending_acks(), 1);
    assert_eq!(sim.peers[a].stats().forged, 2, "both forgeries counted");
    // C comes back: the message is delivered once and the real ack settles it.
    sim.run_until(20_000, MS, |sim| sim.peers[c].is_running());
    let mut acked = Vec::new();
    sim.run_until(20_000, MS, |sim| {
        acked.extend(
            sim.take_events(a)
                .into_iter()
                .filter(|e| matches!(e, Event::Acked { .. })),
        );
        !acked.is_empty()
    });
    assert_eq!(acked, vec![Event::Acked { id }]);
    let got: Vec<_> = sim
        .take_events(c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.data),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![Bytes::from_static(b"for C only")]);
}

#[test]
fn a_member_cannot_forge_a_reply() {
    let mut sim = Sim::new(sim::seed(12));
    let a = sim.config("A");
    let c = sim.config("C");
    let a = sim.add_peer(a);
    let c = sim.add_peer(c);
    sim.connect(a);
    sim.connect(c);
    sim.peers[c].set_answers_requests(true);
    let mut m = Raw::join(&mut sim, "M");
    let now = sim.now;
    let id = sim.peers[a]
        .request(
            &name("C"),
            Bytes::from_static(b"temp?"),
            0,
            Duration::from_secs(5),
            now,
        )
        .unwrap();
    // M answers first, in C's place (a reply names its request in `prev`).
    m.send(
        &mut sim,
        &[Frame::Send(Message {
            peer: name("A"),
            id: 1,
            flags: flags::REPLY,
            chunk: None,
            prev: Some(id),
            payload: Bytes::from_static(b"-40.0"),
        })],
    );
    for _ in 0..20 {
        sim.step(MS);
    }
    assert!(
        !sim.take_events(a)
            .iter()
            .any(|e| matches!(e, Event::Reply { .. })),
        "the forged reply settled the request"
    );
    assert_eq!(sim.peers[a].stats().forged, 1);
    // C's real answer settles it.
    let req = sim
        .take_events(c)
        .into_iter()
        .find_map(|e| match e {
            Event::Request(r) => Some(r),
            _ => None,
        })
        .expect("C got the request");
    sim.peers[c]
        .reply(&req.from, req.id, b"21.5", true)
        .unwrap();
    let mut reply = None;
    sim.run_until(1000, MS, |sim| {
        for e in sim.take_events(a) {
            if let Event::Reply { id: got, reply: r } = e {
                assert_eq!(got, id);
                reply = Some(r);
            }
        }
        reply.is_some()
    });
    let reply = reply.unwrap();
    assert_eq!(reply.from.as_str(), "C");
    assert_eq!(&reply.data[..], b"21.5");
}

/// Declares 32 bytes, then a literal that runs past the end: Snappy refuses it.
const CORRUPT_SNAPPY: &[u8] = b"\x20\xf0\x01ab";

#[test]
fn a_corrupt_compressed_payload_costs_only_that_message() {
    // Found by the router_session fuzzer: the router forwards a member's payload as it
    // is, and the recipient used to end its own session over it.
    let mut sim = Sim::new(sim::seed(15));
    let a = sim.config("A");
    let c = sim.config("C");
    let a = sim.add_peer(a);
    let c = sim.add_peer(c);
    sim.connect(a);
    sim.connect(c);
    let mut m = Raw::join(&mut sim, "M");
    let to_a = |id, prev, flag_bits, payload: &'static [u8]| {
        Frame::Send(Message {
            peer: name("A"),
            id,
            flags: flag_bits,
            chunk: None,
            prev: Some(prev),
            payload: Bytes::from_static(payload),
        })
    };
    sim.take_events(a);
    m.send(
        &mut sim,
        &[to_a(
            1,
            0,
            flags::COMPRESSED | flags::ACK_REQUESTED,
            CORRUPT_SNAPPY,
        )],
    );
    let seen = m.wait_for(&mut sim, |f| matches!(f, Frame::Nack { .. }));
    assert!(
        seen.iter().any(|f| matches!(
            f,
            Frame::Nack { peer, id: 1, reason: NackReason::Unreadable } if peer.as_str() == "A"
        )),
        "the sender is told its message was unreadable: {seen:?}"
    );
    assert!(sim.peers[a].is_running(), "A kept its session");
    assert_eq!(sim.peers[a].stats().unreadable, 1);
    let events = sim.take_events(a);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Message(_) | Event::Status(_))),
        "nothing was delivered and A never reconnected: {events:?}"
    );
    // The sender's next message in the same acked stream is no gap: delivered and acked.
    m.send(&mut sim, &[to_a(2, 1, flags::ACK_REQUESTED, b"readable")]);
    let seen = m.wait_for(&mut sim, |f| matches!(f, Frame::Ack { id: 2, .. }));
    assert!(!seen.iter().any(|f| matches!(f, Frame::Nack { .. })));
    let got: Vec<_> = sim
        .take_events(a)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(msg) => Some(msg.data),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![Bytes::from_static(b"readable")]);
    // And the legitimate peers carry on: C to A, acknowledged.
    let now = sim.now;
    let id = sim.peers[c]
        .send_acked(&name("A"), Bytes::from_static(b"still here"), 0, now)
        .unwrap();
    sim.run_until(1000, MS, |sim| {
        sim.take_events(c)
            .iter()
            .any(|e| matches!(e, Event::Acked { id: got } if *got == id))
    });
}

#[test]
fn an_unreadable_reply_fails_the_request_at_once() {
    let mut sim = Sim::new(sim::seed(16));
    let a = sim.config("A");
    let a = sim.add_peer(a);
    sim.connect(a);
    let mut m = Raw::join(&mut sim, "M");
    let now = sim.now;
    let id = sim.peers[a]
        .request(
            &name("M"),
            Bytes::from_static(b"temp?"),
            0,
            Duration::from_secs(60),
            now,
        )
        .unwrap();
    m.wait_for(&mut sim, |f| matches!(f, Frame::Deliver(_)));
    m.send(
        &mut sim,
        &[Frame::Send(Message {
            peer: name("A"),
            id: 1,
            flags: flags::REPLY | flags::COMPRESSED,
            chunk: None,
            prev: Some(id),
            payload: Bytes::from_static(CORRUPT_SNAPPY),
        })],
    );
    let mut failed = None;
    sim.run_until(1000, MS, |sim| {
        for e in sim.take_events(a) {
            if let Event::RequestFailed { id: got, error } = e {
                assert_eq!(got, id);
                failed = Some(error);
            }
        }
        failed.is_some()
    });
    let error = failed.unwrap();
    assert!(
        matches!(&error, ClientError::UnreadableReply { name, .. } if name == "M"),
        "{error:?}"
    );
    assert!(sim.peers[a].is_running());
    assert_eq!(sim.peers[a].stats().unreadable, 1);
}

#[test]
fn a_client_sending_router_frames_is_closed_and_the_others_carry_on() {
    let mut sim = Sim::new(sim::seed(13));
    let a = sim.config("A");
    let b = sim.config("B");
    let a = sim.add_peer(a);
    let b = sim.add_peer(b);
    sim.connect(a);
    sim.connect(b);
    let mut m = Raw::join(&mut sim, "M");
    // A `Deliver` claiming to come from A: only the router may send those.
    m.send(
        &mut sim,
        &[Frame::Deliver(Message {
            peer: name("A"),
            id: 9,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"I am A"),
        })],
    );
    let frames = m.wait_for(&mut sim, |f| matches!(f, Frame::Error { .. }));
    assert!(frames.iter().any(|f| matches!(
        f,
        Frame::Error {
            code: lanmesh_proto::ErrorCode::Protocol,
            ..
        }
    )));
    sim.run_until(10_000, MS, |sim| !sim.member_names().contains(&"M".into()));
    // B heard nothing from the impostor, and A and B still talk.
    let dest = lanmesh_proto::Destination::Peer(name("B"));
    sim.peers[a]
        .send(&dest, Bytes::from_static(b"still here"), 0)
        .unwrap();
    let mut got = Vec::new();
    sim.run_until(1000, MS, |sim| {
        for e in sim.take_events(b) {
            if let Event::Message(m) = e {
                got.push((m.from.to_string(), m.data));
            }
        }
        !got.is_empty()
    });
    assert_eq!(got, vec![("A".into(), Bytes::from_static(b"still here"))]);
}

#[test]
fn junk_before_the_handshake_and_an_oversized_record_close_only_that_connection() {
    let mut sim = Sim::new(sim::seed(14));
    let a = sim.config("A");
    let a = sim.add_peer(a);
    sim.connect(a);
    // A stranger: a length prefix claiming 60 KiB during the handshake (1 KiB at most).
    let junk = sim.raw_link();
    sim.raw_send(junk, &[0xf0, 0x00, 1, 2, 3]);
    // Another: random bytes that parse as a small record, then garbage.
    let noise = sim.raw_link();
    sim.raw_send(
        noise,
        &[0x00, 0x10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9],
    );
    for _ in 0..100 {
        sim.step(MS);
    }
    assert!(
        !sim.links[junk].alive,
        "the oversized handshake record was accepted"
    );
    assert!(!sim.links[noise].alive, "garbage as message 1 was accepted");
    assert!(sim.peers[a].is_running());
    assert_eq!(sim.member_names(), vec!["A".to_string()]);
}

#[test]
fn a_peer_that_joins_under_a_name_bound_to_another_key_is_refused() {
    let mut sim = Sim::new(sim::seed(15));
    let a = sim.config("A");
    let a = sim.add_peer(a);
    sim.connect(a);
    let mut thief = sim.config("A");
    thief.reconnect = false;
    let t = sim.add_peer(thief);
    let mut closed = None;
    sim.run_until(1000, MS, |sim| {
        for e in sim.take_events(t) {
            if let Event::Closed { error, .. } = e {
                closed = Some(error);
            }
        }
        closed.is_some()
    });
    assert!(
        matches!(closed, Some(ClientError::Refused { .. })),
        "{closed:?}"
    );
    assert!(sim.peers[a].is_running(), "the holder was not disturbed");
}
