//! The client core against an in-memory router (`Responder` plus frames), step by step.
//! The same tests run natively (`cargo test`) and in headless Chromium
//! (`wasm-bindgen-test`), where `Identity::generate` goes through getrandom's `wasm_js`.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use lanmesh_proto::frame::flags;
use lanmesh_proto::{
    Answer, Cipher, Compression, Destination, ErrorCode, Established, Frame, Framing,
    HandshakeConfig, Identity, Limits, Message, NackReason, Name, PeerInfo, Reassembler, Responder,
    Transport,
};
use lanmesh_wasm::{Client, ClientConfig, ClientError, Event, Incoming, Payload};

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

fn config(mesh: &str, key: Option<[u8; 32]>) -> HandshakeConfig {
    let mut c = HandshakeConfig::new(Identity::generate().unwrap(), mesh);
    c.mesh_key = key;
    c.framing = Framing::Message;
    c
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
    }
}

/// A browser client and the router end of its connection.
struct Pair {
    client: Client,
    router: Established,
    router_key: [u8; 32],
    now: u64,
}

impl Pair {
    /// Handshake only: the client is established but not yet welcomed.
    fn handshake(peer: HandshakeConfig, router: HandshakeConfig) -> Self {
        let mut client = Client::start(ClientConfig::new(name("web-1"), peer), 0).unwrap();
        let msg1 = client.poll_transmit().unwrap();
        assert!(
            client.poll_transmit().is_none(),
            "only message 1 before message 2"
        );
        let router_key = *router.identity.public();
        let mut responder = Responder::new(&router).unwrap();
        let Answer::Accept(msg2) = responder.read_offer(&msg1).unwrap() else {
            panic!("router refused the offer")
        };
        assert_eq!(responder.offer().unwrap().name, Some(name("web-1")));
        assert_eq!(client.feed(&msg2, 1), vec![]);
        let msg3 = client.poll_transmit().unwrap();
        let router = responder.read_confirm(&msg3).unwrap();
        assert!(!client.is_connected());
        Self {
            client,
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
        assert_eq!(events, vec![Event::Connected, Event::PeersChanged]);
        assert!(pair.client.is_connected());
        pair
    }

    /// Frames from the router, one record per WebSocket message.
    fn router_sends(&mut self, frames: &[Frame]) -> Vec<Event> {
        for f in frames {
            self.router.connection.send(f).unwrap();
        }
        let mut events = Vec::new();
        while let Some(record) = self.router.connection.poll_transmit().unwrap() {
            events.extend(self.client.feed(&record, self.now));
        }
        events
    }

    /// Everything the client has queued, decoded by the router.
    fn router_receives(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(record) = self.client.poll_transmit() {
            for f in self.router.connection.open(&record).unwrap() {
                frames.push(f.unwrap());
            }
        }
        frames
    }

    fn names(&self) -> Vec<&str> {
        self.client.peers().map(|p| p.name.as_str()).collect()
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
        assert_eq!(pair.client.name().as_str(), "web-1");
        assert_eq!(
            pair.client.algorithms(),
            Some((Cipher::ChaCha20Poly1305, Compression::Snappy))
        );
        assert_eq!(pair.client.router_key(), Some(&pair.router_key));
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
                data: Payload::Text("hi".into()),
                broadcast: false,
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
        assert_eq!(
            events,
            vec![Event::Message(Incoming {
                from: name("laptop"),
                id: 8,
                data: Payload::Binary(Bytes::from_static(&[0, 159, 146, 150])),
                broadcast: true,
            })]
        );
        assert_eq!(pair.router_receives(), vec![]);
    }

    fn text_and_binary_sends_carry_their_flags_and_serial_ids() {
        let mut pair = Pair::connected();
        let to = Destination::Peer(name("laptop"));
        let id = pair.client.send(to.clone(), Payload::Text("hello".into()), false, 5).unwrap();
        assert_eq!(id, 1);
        let got = reassemble(pair.router_receives(), "web-1");
        assert_eq!((got.id, got.flags, &got.data[..]), (1, flags::TEXT, &b"hello"[..]));

        let bytes = Bytes::from_static(&[1, 2, 3]);
        let id = pair.client.send(to, Payload::Binary(bytes.clone()), false, 5).unwrap();
        assert_eq!(id, 2);
        let got = reassemble(pair.router_receives(), "web-1");
        assert_eq!((got.id, got.flags, got.data), (2, 0, bytes));

        let id = pair.client.send(Destination::Everyone, Payload::Text("all".into()), false, 5).unwrap();
        assert_eq!(id, 3);
        let frames = pair.router_receives();
        assert!(matches!(&frames[..], [Frame::Broadcast(b)] if b.id == 3 && b.flags == flags::TEXT));
    }

    fn large_messages_are_chunked_and_compressed() {
        let mut pair = Pair::connected();
        let data: Bytes = (0..300_000u32).map(|i| (i % 7) as u8).collect::<Vec<_>>().into();
        pair.client
            .send(Destination::Peer(name("laptop")), Payload::Binary(data.clone()), false, 5)
            .unwrap();
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
        pair.client
            .send(Destination::Peer(name("laptop")), Payload::Binary(random.clone()), false, 5)
            .unwrap();
        let frames = pair.router_receives();
        assert!(frames.len() >= 4, "{} frames", frames.len());
        assert_eq!(reassemble(frames, "web-1").data, random);
    }

    fn ack_settles_and_unknown_peer_nack_fails_an_acked_send() {
        let mut pair = Pair::connected();
        let id = pair.client.send(Destination::Peer(name("laptop")), Payload::Text("x".into()), true, 5).unwrap();
        let frames = pair.router_receives();
        assert!(matches!(&frames[..], [Frame::Send(m)] if m.flags & flags::ACK_REQUESTED != 0));
        assert_eq!(pair.client.pending_acks(), 1);
        assert_eq!(pair.router_sends(&[Frame::Ack { peer: name("laptop"), id }]), vec![Event::Acked { id }]);

        let id = pair.client.send(Destination::Peer(name("x")), Payload::Text("y".into()), true, 5).unwrap();
        pair.router_receives();
        let events = pair.router_sends(&[Frame::Nack { peer: name("x"), id, reason: NackReason::UnknownPeer }]);
        let [Event::AckFailed { id: failed, error }] = &events[..] else {
            panic!("expected one AckFailed, got {events:?}")
        };
        assert_eq!(*failed, id);
        assert_eq!(error.to_string(), r#"unknown peer "x""#);
        assert_eq!(pair.client.pending_acks(), 0);

        // A nack for a plain send is only reported.
        let id = pair.client.send(Destination::Peer(name("x")), Payload::Text("z".into()), false, 5).unwrap();
        let events = pair.router_sends(&[Frame::Nack { peer: name("x"), id, reason: NackReason::Overloaded }]);
        assert_eq!(events, vec![Event::Undelivered { to: name("x"), id, reason: NackReason::Overloaded }]);
    }

    fn deadlines_fail_acked_sends_and_ping_an_idle_router() {
        let mut pair = Pair::connected();
        pair.router_receives();
        let id = pair.client.send(Destination::Peer(name("laptop")), Payload::Text("x".into()), true, 100).unwrap();
        pair.router_receives();
        assert_eq!(pair.client.poll_timeout(), Some(10_001), "ping due at idle/3 after the last record");
        let events = pair.client.handle_timeout(10_001);
        assert_eq!(events, vec![]);
        assert_eq!(pair.router_receives(), vec![Frame::Ping(1)]);
        assert_eq!(pair.client.poll_timeout(), Some(10_100));
        let events = pair.client.handle_timeout(10_100);
        let [Event::AckFailed { id: failed, error }] = &events[..] else {
            panic!("expected one AckFailed, got {events:?}")
        };
        assert_eq!(*failed, id);
        assert_eq!(error.to_string(), format!(r#"no acknowledgement from "laptop" for message {id} within 10s"#));
        // Without any answer, the router is given up on after the idle timeout.
        let events = pair.client.handle_timeout(30_001);
        assert_eq!(events, vec![Event::Closed { reason: "disconnected: the router stopped answering".into() }]);
        assert_eq!(pair.client.poll_timeout(), None);
    }

    fn router_ping_is_answered_with_pong() {
        let mut pair = Pair::connected();
        assert_eq!(pair.router_sends(&[Frame::Ping(42)]), vec![]);
        assert_eq!(pair.router_receives(), vec![Frame::Pong(42)]);
    }

    fn membership_changes_update_the_list() {
        let mut pair = Pair::connected();
        assert_eq!(pair.router_sends(&[Frame::PeerJoined(info("phone"))]), vec![Event::PeersChanged]);
        assert_eq!(pair.names(), ["laptop", "phone", "web-1"]);
        assert_eq!(pair.router_sends(&[Frame::PeerLeft { name: name("laptop") }]), vec![Event::PeersChanged]);
        assert_eq!(pair.names(), ["phone", "web-1"]);
    }

    fn router_error_before_welcome_is_a_refusal() {
        let mut pair = Pair::handshake(config("lanmesh", None), config("lanmesh", None));
        let events = pair.router_sends(&[Frame::Error { code: ErrorCode::NameTaken, text: r#"name "web-1" is taken"#.into() }]);
        assert_eq!(events, vec![Event::Closed { reason: r#"router refused: name "web-1" is taken"#.into() }]);
        assert!(pair.client.is_closed());
        assert!(pair.client.send(Destination::Everyone, Payload::Text("x".into()), false, 2).is_err());
    }

    fn refused_offer_and_wrong_mesh_key_never_connect() {
        // Another mesh: the router answers message 1 with an encrypted refusal.
        let mut client = Client::start(ClientConfig::new(name("web-1"), config("home", None)), 0).unwrap();
        let msg1 = client.poll_transmit().unwrap();
        let mut responder = Responder::new(&config("office", None)).unwrap();
        let Answer::Refuse(msg2, _) = responder.read_offer(&msg1).unwrap() else { panic!("accepted") };
        let events = client.feed(&msg2, 1);
        let [Event::Closed { reason }] = &events[..] else { panic!("{events:?}") };
        assert!(reason.starts_with("router refused: mesh mismatch"), "{reason}");

        // Same mesh key on both sides: fine.
        let pair = Pair::handshake(config("m", Some([9; 32])), config("m", Some([9; 32])));
        assert!(!pair.client.is_closed());

        // A different mesh key: message 3 does not decrypt on the router, which closes.
        let mut client = Client::start(ClientConfig::new(name("web-1"), config("m", Some([1; 32]))), 0).unwrap();
        let msg1 = client.poll_transmit().unwrap();
        let mut responder = Responder::new(&config("m", Some([2; 32]))).unwrap();
        let failed = match responder.read_offer(&msg1) {
            Ok(Answer::Accept(msg2)) => {
                let events = client.feed(&msg2, 1);
                if events.is_empty() {
                    let msg3 = client.poll_transmit().unwrap();
                    assert!(responder.read_confirm(&msg3).is_err());
                    client.connection_lost("the WebSocket closed with code 1006")
                } else {
                    events
                }
            }
            _ => client.connection_lost("the WebSocket closed with code 1006"),
        };
        let [Event::Closed { reason }] = &failed[..] else { panic!("{failed:?}") };
        assert!(reason.contains("wrong or missing mesh key") || reason.contains("decryption failed"), "{reason}");
    }

    fn handshake_deadline_closes() {
        let mut client = Client::start(ClientConfig::new(name("web-1"), config("lanmesh", None)), 1_000).unwrap();
        assert_eq!(client.poll_timeout(), Some(11_000));
        assert_eq!(client.handle_timeout(10_999), vec![]);
        assert_eq!(
            client.handle_timeout(11_000),
            vec![Event::Closed { reason: "the router did not complete the handshake within 10s".into() }]
        );
    }

    fn tampered_record_is_reported_to_the_router_and_closes() {
        let mut pair = Pair::connected();
        pair.router.connection.send(&Frame::Ping(1)).unwrap();
        let record = pair.router.connection.poll_transmit().unwrap().unwrap();
        let mut bad = record.to_vec();
        bad[0] ^= 1;
        let events = pair.client.feed(&bad, 2);
        let [Event::Closed { reason }] = &events[..] else { panic!("{events:?}") };
        assert!(reason.starts_with("protocol error: decryption failed"), "{reason}");
        assert!(matches!(&pair.router_receives()[..], [Frame::Error { code: ErrorCode::Protocol, .. }]));
    }

    fn close_tells_the_router_and_fails_what_waits() {
        let mut pair = Pair::connected();
        let id = pair.client.send(Destination::Peer(name("laptop")), Payload::Text("x".into()), true, 5).unwrap();
        pair.router_receives();
        let events = pair.client.close();
        let [Event::AckFailed { id: failed, error }, Event::Closed { reason }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*failed, id);
        assert!(matches!(error, ClientError::Disconnected { .. }));
        assert_eq!(reason, "closed by the application");
        assert_eq!(pair.router_receives(), vec![Frame::Close]);
        assert_eq!(pair.client.close(), vec![], "closing twice does nothing");
    }

    fn connection_lost_while_running_is_a_disconnect() {
        let mut pair = Pair::connected();
        let events = pair.client.connection_lost("the WebSocket closed with code 1006");
        assert_eq!(events, vec![Event::Closed { reason: "disconnected: the WebSocket closed with code 1006".into() }]);
        assert_eq!(pair.client.feed(b"late", 3), vec![]);
    }

    fn sends_before_welcome_or_too_large_are_refused() {
        let mut pair = Pair::handshake(config("lanmesh", None), config("lanmesh", None));
        let err = pair.client.send(Destination::Peer(name("laptop")), Payload::Text("x".into()), false, 2).unwrap_err();
        assert_eq!(err.to_string(), "disconnected: not connected yet");
        let mut pair = Pair::connected();
        let err = pair.client.send(Destination::Everyone, Payload::Text("x".into()), true, 2).unwrap_err();
        assert!(matches!(err, ClientError::Invalid(_)));
        let huge = Bytes::from(vec![0u8; 64 * 1024 * 1024 + 1]);
        let err = pair.client.send(Destination::Peer(name("laptop")), Payload::Binary(huge), false, 2).unwrap_err();
        assert!(matches!(err, ClientError::TooLarge { .. }));
    }
}
