//! The peer core the browser runs, step by step against an in-memory router (a
//! `Responder` plus frames), one record per WebSocket message. The same tests run
//! natively (`cargo test`) and in headless Chromium (`wasm-bindgen-test`), where the
//! crypto, the compression and `Identity::generate` (getrandom's `wasm_js`) are wasm's.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanmesh_core::peer::{Config, Event, PeerCore};
use lanmesh_core::{ClientError, Instant, Message as Incoming, PeerEvent, Undelivered};
use lanmesh_proto::frame::flags;
use lanmesh_proto::{
    Answer, Cipher, Compression, Destination, ErrorCode, Established, Frame, Framing,
    HandshakeConfig, Identity, Limits, Message, NackReason, Name, PeerInfo, Reassembler, Responder,
    Transport,
};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

macro_rules! tests {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {$(
        $(#[$meta])*
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        fn $name() $body
    )*};
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

fn config(mesh: &str, key: Option<[u8; 32]>) -> HandshakeConfig {
    let mut c = HandshakeConfig::new(Identity::generate().unwrap(), mesh);
    c.mesh_key = key;
    c.framing = Framing::Message;
    c
}

/// A browser peer's core as `MeshPeer` configures it, not reconnecting (these tests are
/// about one connection).
fn peer(hs: HandshakeConfig, now: u64) -> PeerCore {
    let mut c = Config::new(Some(name("web-1")), hs);
    c.connect_timeout = Duration::from_secs(10);
    c.reconnect = false;
    let mut core = PeerCore::new(c);
    core.connect("ws://router.test/mesh", ms(now)).unwrap();
    core
}

fn info(n: &str) -> PeerInfo {
    PeerInfo {
        name: name(n),
        transport: Transport::Tcp,
        cipher: Cipher::ChaCha20Poly1305,
        compression: Compression::Snappy,
        key: [7; 32],
        addr: "10.0.0.2:5000".into(),
        joined_ms: 1,
        direct: String::new(),
        incarnation: 0,
    }
}

fn events(core: &mut PeerCore) -> Vec<Event> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// Events without the status changes (checked where they matter).
fn happenings(core: &mut PeerCore) -> Vec<Event> {
    events(core)
        .into_iter()
        .filter(|e| !matches!(e, Event::Status(_)))
        .collect()
}

fn feed(core: &mut PeerCore, message: &[u8], now: u64) -> Vec<Event> {
    core.handle_input(&mut BytesMut::from(message), ms(now));
    happenings(core)
}

/// A browser peer and the router end of its connection.
struct Pair {
    core: PeerCore,
    router: Established,
    router_key: [u8; 32],
    now: u64,
}

impl Pair {
    /// Handshake only: the peer is established but not yet welcomed.
    fn handshake(peer_hs: HandshakeConfig, router: HandshakeConfig) -> Self {
        let mut core = peer(peer_hs, 0);
        let msg1 = core.poll_transmit().unwrap();
        assert!(
            core.poll_transmit().is_none(),
            "only message 1 before message 2"
        );
        let router_key = *router.identity.public();
        let mut responder = Responder::new(&router).unwrap();
        let Answer::Accept(msg2) = responder.read_offer(&msg1).unwrap() else {
            panic!("router refused the offer")
        };
        assert_eq!(responder.offer().unwrap().name, Some(name("web-1")));
        assert_eq!(feed(&mut core, &msg2, 1), vec![]);
        let msg3 = core.poll_transmit().unwrap();
        let router = responder.read_confirm(&msg3).unwrap();
        assert!(!core.is_running());
        Self {
            core,
            router,
            router_key,
            now: 1,
        }
    }

    /// Handshake, `Welcome` and a member list in two pages.
    fn connected() -> Self {
        let mut pair = Self::handshake(config("lanmesh", None), config("lanmesh", None));
        let events = pair.router_sends(&[
            Frame::Welcome {
                name: name("web-1"),
            },
            Frame::PeerList {
                last: false,
                peers: vec![info("web-1")],
            },
        ]);
        assert_eq!(events, vec![]);
        let events = pair.router_sends(&[Frame::PeerList {
            last: true,
            peers: vec![info("laptop")],
        }]);
        assert_eq!(
            events,
            vec![
                Event::Peer(PeerEvent::Joined(info("laptop"))),
                Event::Peer(PeerEvent::Joined(info("web-1"))),
                Event::Connected,
            ]
        );
        assert!(pair.core.is_running());
        pair
    }

    /// Frames from the router, one record per WebSocket message.
    fn router_sends(&mut self, frames: &[Frame]) -> Vec<Event> {
        for f in frames {
            self.router.connection.send(f).unwrap();
        }
        let mut events = Vec::new();
        while let Some(record) = self.router.connection.poll_transmit().unwrap() {
            events.extend(feed(&mut self.core, &record, self.now));
        }
        events
    }

    /// Everything the peer has queued, decoded by the router.
    fn router_receives(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(record) = self.core.poll_transmit() {
            for f in self.router.connection.open(&record).unwrap() {
                frames.push(f.unwrap());
            }
        }
        frames
    }

    fn names(&self) -> Vec<&str> {
        self.core.peers().map(|p| p.name.as_str()).collect()
    }
}

/// What the recipient's client would make of the `Send` frames.
fn reassemble(frames: Vec<Frame>, from: &str) -> lanmesh_proto::Complete {
    let mut r = Reassembler::new(Limits::default());
    let mut done = None;
    for f in frames {
        let Frame::Send(mut m) = f else {
            panic!("expected Send, got {f:?}")
        };
        m.peer = name(from);
        done = r.push(m).unwrap();
    }
    done.expect("the last frame completes the message")
}

tests! {
    fn handshake_then_welcome_and_member_list_connect() {
        let pair = Pair::connected();
        assert_eq!(pair.names(), ["laptop", "web-1"]);
        assert_eq!(pair.core.name().unwrap().as_str(), "web-1");
        assert_eq!(
            pair.core.algorithms(),
            Some((Cipher::ChaCha20Poly1305, Compression::Snappy))
        );
        assert_eq!(pair.core.router_key(), Some(&pair.router_key));
    }

    fn delivered_message_is_an_event_and_is_acked_when_asked() {
        let mut pair = Pair::connected();
        let events = pair.router_sends(&[Frame::Deliver(Message {
            peer: name("laptop"),
            id: 7,
            flags: flags::TEXT | flags::ACK_REQUESTED,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"hi"),
        })]);
        assert_eq!(
            events,
            vec![Event::Message(Incoming {
                from: name("laptop"),
                id: 7,
                data: Bytes::from_static(b"hi"),
                flags: flags::TEXT,
            })]
        );
        assert_eq!(
            pair.router_receives(),
            vec![Frame::Ack {
                peer: name("laptop"),
                id: 7
            }]
        );
        // Binary and not acknowledged: no answer.
        let events = pair.router_sends(&[Frame::Deliver(Message {
            peer: name("laptop"),
            id: 8,
            flags: flags::BROADCAST,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(&[0, 159, 146, 150]),
        })]);
        let [Event::Message(m)] = &events[..] else { panic!("{events:?}") };
        assert!(m.is_broadcast());
        assert_eq!(m.text(), None);
        assert_eq!(pair.router_receives(), vec![]);
    }

    fn a_duplicate_of_an_acked_stream_message_is_acked_again_not_delivered() {
        let mut pair = Pair::connected();
        let frame = Frame::Deliver(Message {
            peer: name("laptop"),
            id: 3,
            flags: flags::ACK_REQUESTED,
            chunk: None,
            prev: Some(0),
            payload: Bytes::from_static(b"once"),
        });
        assert_eq!(pair.router_sends(std::slice::from_ref(&frame)).len(), 1);
        pair.router_receives();
        assert_eq!(pair.router_sends(&[frame]), vec![], "a resend after a cut is dropped");
        assert_eq!(pair.router_receives(), vec![Frame::Ack { peer: name("laptop"), id: 3 }]);
        assert_eq!(pair.core.stats().duplicates, 1);
    }

    fn text_and_binary_sends_carry_their_flags_and_serial_ids() {
        let mut pair = Pair::connected();
        let to = Destination::Peer(name("laptop"));
        let id = pair.core.send(&to, Bytes::from_static(b"hello"), flags::TEXT).unwrap();
        assert_eq!(id, 1);
        let got = reassemble(pair.router_receives(), "web-1");
        assert_eq!((got.id, got.flags, &got.data[..]), (1, flags::TEXT, &b"hello"[..]));

        let bytes = Bytes::from_static(&[1, 2, 3]);
        let id = pair.core.send(&to, bytes.clone(), 0).unwrap();
        assert_eq!(id, 2);
        let got = reassemble(pair.router_receives(), "web-1");
        assert_eq!((got.id, got.flags, got.data), (2, 0, bytes));

        let id = pair.core.send(&Destination::Everyone, Bytes::from_static(b"all"), flags::TEXT).unwrap();
        assert_eq!(id, 3);
        let frames = pair.router_receives();
        assert!(matches!(&frames[..], [Frame::Broadcast(b)] if b.id == 3 && b.flags == flags::TEXT));
    }

    fn large_messages_are_chunked_and_compressed() {
        let mut pair = Pair::connected();
        let data: Bytes = (0..300_000u32).map(|i| (i % 7) as u8).collect::<Vec<_>>().into();
        pair.core.send(&Destination::Peer(name("laptop")), data.clone(), 0).unwrap();
        let frames = pair.router_receives();
        assert!(frames.iter().all(|f| matches!(f, Frame::Send(m) if m.flags & flags::COMPRESSED != 0)));
        assert_eq!(reassemble(frames, "web-1").data, data);

        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Bytes = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect::<Vec<_>>()
            .into();
        pair.core.send(&Destination::Peer(name("laptop")), random.clone(), 0).unwrap();
        let frames = pair.router_receives();
        assert!(frames.len() >= 4, "{} frames", frames.len());
        assert_eq!(reassemble(frames, "web-1").data, random);
    }

    fn ack_settles_and_unknown_peer_nack_fails_an_acked_send() {
        let mut pair = Pair::connected();
        let id = pair.core.send_acked(&name("laptop"), Bytes::from_static(b"x"), flags::TEXT, ms(5)).unwrap();
        let frames = pair.router_receives();
        assert!(matches!(&frames[..], [Frame::Send(m)] if m.flags & flags::ACK_REQUESTED != 0 && m.prev == Some(0)));
        assert_eq!(pair.core.pending_acks(), 1);
        assert_eq!(pair.router_sends(&[Frame::Ack { peer: name("laptop"), id }]), vec![Event::Acked { id }]);

        let id = pair.core.send_acked(&name("x"), Bytes::from_static(b"y"), flags::TEXT, ms(5)).unwrap();
        pair.router_receives();
        let events = pair.router_sends(&[Frame::Nack { peer: name("x"), id, reason: NackReason::UnknownPeer }]);
        let [Event::SendFailed { id: failed, error }] = &events[..] else {
            panic!("expected one SendFailed, got {events:?}")
        };
        assert_eq!(*failed, id);
        assert_eq!(error.to_string(), r#"unknown peer "x""#);
        assert_eq!(pair.core.pending_acks(), 0);

        // A nack for a plain send is only reported.
        let id = pair.core.send(&Destination::Peer(name("x")), Bytes::from_static(b"z"), 0).unwrap();
        let events = pair.router_sends(&[Frame::Nack { peer: name("x"), id, reason: NackReason::Overloaded }]);
        assert_eq!(events, vec![Event::Undelivered(Undelivered { to: name("x"), id, reason: NackReason::Overloaded })]);
    }

    fn requests_get_their_reply_or_fail_clearly() {
        let mut pair = Pair::connected();
        let timeout = Duration::from_secs(2);
        let id = pair.core.request(&name("laptop"), Bytes::from_static(b"temp?"), flags::TEXT, timeout, ms(5)).unwrap();
        let frames = pair.router_receives();
        assert!(matches!(&frames[..], [Frame::Send(m)] if m.flags & flags::REQUEST != 0));
        let events = pair.router_sends(&[Frame::Deliver(Message {
            peer: name("laptop"),
            id: 40,
            flags: flags::REPLY | flags::TEXT,
            chunk: None,
            prev: Some(id),
            payload: Bytes::from_static(b"21.5"),
        })]);
        let [Event::Reply { id: got, reply }] = &events[..] else { panic!("{events:?}") };
        assert_eq!((*got, reply.text()), (id, Some("21.5")));

        let id = pair.core.request(&name("laptop"), Bytes::from_static(b"?"), 0, timeout, ms(5)).unwrap();
        pair.router_receives();
        let events = pair.router_sends(&[Frame::Nack { peer: name("laptop"), id, reason: NackReason::NoResponder }]);
        let [Event::RequestFailed { error: ClientError::NoResponder { .. }, .. }] = &events[..] else {
            panic!("{events:?}")
        };

        let id = pair.core.request(&name("laptop"), Bytes::from_static(b"?"), 0, timeout, ms(5)).unwrap();
        pair.core.handle_timeout(ms(2_004));
        assert!(happenings(&mut pair.core).iter().all(|e| !matches!(e, Event::RequestFailed { .. })));
        pair.core.handle_timeout(ms(2_005));
        let failed = happenings(&mut pair.core);
        assert!(
            failed.iter().any(|e| matches!(e, Event::RequestFailed { id: f, error: ClientError::RequestTimeout { .. } } if *f == id)),
            "{failed:?}"
        );
    }

    fn a_request_to_a_peer_that_answers_none_is_declined_for_it() {
        let mut pair = Pair::connected();
        let events = pair.router_sends(&[Frame::Deliver(Message {
            peer: name("laptop"),
            id: 5,
            flags: flags::REQUEST,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"?"),
        })]);
        assert_eq!(events, vec![]);
        assert_eq!(
            pair.router_receives(),
            vec![Frame::Nack { peer: name("laptop"), id: 5, reason: NackReason::NoResponder }]
        );
        pair.core.set_answers_requests(true);
        let events = pair.router_sends(&[Frame::Deliver(Message {
            peer: name("laptop"),
            id: 6,
            flags: flags::REQUEST,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"?"),
        })]);
        assert!(matches!(&events[..], [Event::Request(r)] if r.id == 6));
    }

    fn deadlines_fail_acked_sends_and_ping_an_idle_router() {
        let mut pair = Pair::connected();
        pair.router_receives();
        let id = pair.core.send_acked(&name("laptop"), Bytes::from_static(b"x"), flags::TEXT, ms(100)).unwrap();
        pair.router_receives();
        pair.core.handle_timeout(ms(10_001));
        let frames = pair.router_receives();
        assert!(frames.contains(&Frame::Ping(1)), "a ping at idle/3 after the last record: {frames:?}");
        pair.core.handle_timeout(ms(10_100));
        let events = happenings(&mut pair.core);
        let [Event::SendFailed { id: failed, error }] = &events[..] else {
            panic!("expected one SendFailed, got {events:?}")
        };
        assert_eq!(*failed, id);
        assert_eq!(error.to_string(), format!(r#"no acknowledgement from "laptop" for message {id} within 10s"#));
        // Without any answer, the router is given up on after the idle timeout.
        pair.core.handle_timeout(ms(30_002));
        let events = happenings(&mut pair.core);
        assert!(matches!(&events[..], [Event::Closed { error, .. }] if error.to_string() == "disconnected: the router stopped answering"), "{events:?}");
        assert_eq!(pair.core.poll_timeout(), None);
    }

    fn router_ping_is_answered_with_pong() {
        let mut pair = Pair::connected();
        assert_eq!(pair.router_sends(&[Frame::Ping(42)]), vec![]);
        assert_eq!(pair.router_receives(), vec![Frame::Pong(42)]);
    }

    fn membership_changes_update_the_list() {
        let mut pair = Pair::connected();
        assert_eq!(pair.router_sends(&[Frame::PeerJoined(info("phone"))]), vec![Event::Peer(PeerEvent::Joined(info("phone")))]);
        assert_eq!(pair.names(), ["laptop", "phone", "web-1"]);
        assert_eq!(pair.router_sends(&[Frame::PeerLeft { name: name("laptop") }]), vec![Event::Peer(PeerEvent::Left(name("laptop")))]);
        assert_eq!(pair.names(), ["phone", "web-1"]);
    }

    fn router_error_before_welcome_is_a_refusal() {
        let mut pair = Pair::handshake(config("lanmesh", None), config("lanmesh", None));
        let events = pair.router_sends(&[Frame::Error { code: ErrorCode::NameTaken, text: r#"name "web-1" is taken"#.into() }]);
        assert!(matches!(&events[..], [Event::Closed { error, .. }] if error.to_string() == r#"router refused: name "web-1" is taken"#), "{events:?}");
        assert!(pair.core.is_closed());
        assert!(pair.core.send(&Destination::Everyone, Bytes::from_static(b"x"), 0).is_err());
    }

    fn refused_offer_and_wrong_mesh_key_never_connect() {
        // Another mesh: the router answers message 1 with an encrypted refusal.
        let mut core = peer(config("home", None), 0);
        let msg1 = core.poll_transmit().unwrap();
        let mut responder = Responder::new(&config("office", None)).unwrap();
        let Answer::Refuse(msg2, _) = responder.read_offer(&msg1).unwrap() else { panic!("accepted") };
        let events = feed(&mut core, &msg2, 1);
        let [Event::Closed { error, .. }] = &events[..] else { panic!("{events:?}") };
        assert!(error.to_string().starts_with("router refused: mesh mismatch"), "{error}");

        // Same mesh key on both sides: fine.
        let pair = Pair::handshake(config("m", Some([9; 32])), config("m", Some([9; 32])));
        assert!(!pair.core.is_closed());

        // A different mesh key: message 3 does not decrypt on the router, which closes.
        let mut core = peer(config("m", Some([1; 32])), 0);
        let msg1 = core.poll_transmit().unwrap();
        let mut responder = Responder::new(&config("m", Some([2; 32]))).unwrap();
        if let Ok(Answer::Accept(msg2)) = responder.read_offer(&msg1) {
            if feed(&mut core, &msg2, 1).is_empty() {
                let msg3 = core.poll_transmit().unwrap();
                assert!(responder.read_confirm(&msg3).is_err());
            }
        }
        if !core.is_closed() {
            core.transport_closed(Some("the WebSocket closed with code 1006".into()), ms(2));
        }
        let events = happenings(&mut core);
        let closed = events.iter().find_map(|e| match e { Event::Closed { error, .. } => Some(error.to_string()), _ => None }).unwrap();
        assert!(closed.contains("wrong or missing mesh key") || closed.contains("decryption failed"), "{closed}");
    }

    fn handshake_deadline_closes() {
        let mut core = peer(config("lanmesh", None), 1_000);
        assert_eq!(core.poll_timeout(), Some(ms(11_000)));
        core.handle_timeout(ms(10_999));
        assert_eq!(happenings(&mut core), vec![]);
        core.handle_timeout(ms(11_000));
        let events = happenings(&mut core);
        assert!(
            matches!(&events[..], [Event::Closed { error: ClientError::HandshakeTimeout { .. }, .. }]),
            "{events:?}"
        );
    }

    fn tampered_record_is_reported_to_the_router_and_closes() {
        let mut pair = Pair::connected();
        pair.router.connection.send(&Frame::Ping(1)).unwrap();
        let record = pair.router.connection.poll_transmit().unwrap().unwrap();
        let mut bad = record.to_vec();
        bad[0] ^= 1;
        let events = feed(&mut pair.core, &bad, 2);
        let [Event::Closed { error, .. }] = &events[..] else { panic!("{events:?}") };
        assert!(error.to_string().starts_with("protocol error: decryption failed"), "{error}");
        assert!(matches!(&pair.router_receives()[..], [Frame::Error { code: ErrorCode::Protocol, .. }]));
    }

    fn close_tells_the_router_and_fails_what_waits() {
        let mut pair = Pair::connected();
        let id = pair.core.send_acked(&name("laptop"), Bytes::from_static(b"x"), 0, ms(5)).unwrap();
        pair.router_receives();
        pair.core.close(ms(6));
        assert_eq!(pair.router_receives(), vec![Frame::Close]);
        let events = pair.router_sends(&[Frame::Close]);
        let [Event::SendFailed { id: failed, error }, Event::Closed { error: reason, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*failed, id);
        assert!(matches!(error, ClientError::Disconnected { .. }));
        assert_eq!(reason.to_string(), "disconnected: closed");
        pair.core.close(ms(7));
        assert_eq!(happenings(&mut pair.core), vec![], "closing twice does nothing");
    }

    fn connection_lost_while_running_is_a_disconnect_without_reconnection() {
        let mut pair = Pair::connected();
        pair.core.transport_closed(Some("the WebSocket closed with code 1006".into()), ms(3));
        let events = happenings(&mut pair.core);
        assert!(matches!(&events[..], [Event::Closed { error, .. }] if error.to_string() == "disconnected: the WebSocket closed with code 1006"), "{events:?}");
        assert_eq!(feed(&mut pair.core, b"late", 3), vec![]);
    }

    fn sends_before_welcome_or_too_large_are_refused() {
        let mut pair = Pair::handshake(config("lanmesh", None), config("lanmesh", None));
        let err = pair.core.send(&Destination::Peer(name("laptop")), Bytes::from_static(b"x"), 0).unwrap_err();
        assert_eq!(err.to_string(), "disconnected: not connected");
        let mut pair = Pair::connected();
        let huge = Bytes::from(vec![0u8; 64 * 1024 * 1024 + 1]);
        let err = pair.core.send(&Destination::Peer(name("laptop")), huge, 0).unwrap_err();
        assert!(matches!(err, ClientError::TooLarge { .. }));
    }
}
