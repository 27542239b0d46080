//! Two endpoints driven in memory, step by step (quinn's `Pair` habit): the handshake,
//! negotiation, and what tampering, replay and truncation do.

use bytes::{Bytes, BytesMut};

use crate::frame::{Frame, Message, flags};
use crate::handshake::{
    Answer, Established, HandshakeConfig, Identity, Initiator, Offer, Responder,
};
use crate::limits::{MAX_RECORD, TAG_LEN};
use crate::record::PREFIX_LEN;
use crate::{Cipher, Compression, ErrorCode, Framing, Limits, Name, ProtoError};

fn config(mesh: &str) -> HandshakeConfig {
    HandshakeConfig::new(Identity::generate().unwrap(), mesh)
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// Runs a whole handshake; returns (peer side, router side) or the first error.
fn pair(
    peer: &HandshakeConfig,
    router: &HandshakeConfig,
) -> Result<(Established, Established), ProtoError> {
    let (init, msg1) = Initiator::start(peer, Some(name("A")), Bytes::new())?;
    let mut resp = Responder::new(router)?;
    let msg2 = match resp.read_offer(&msg1)? {
        Answer::Accept(m) => m,
        Answer::Refuse(m, _) => m,
    };
    let (client, msg3) = init.read_choice(&msg2)?;
    let server = resp.read_confirm(&msg3)?;
    Ok((client, server))
}

fn exchange(from: &mut Established, to: &mut Established, frames: &[Frame]) -> Vec<Frame> {
    for f in frames {
        from.connection.send(f).unwrap();
    }
    let mut out = Vec::new();
    while let Some(bytes) = from.connection.poll_transmit().unwrap() {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = crate::RecordDecoder::new(crate::limits::MAX_RECORD);
        while let Some(record) = dec.decode(&mut buf).unwrap() {
            for f in to.connection.open_owned(record).unwrap() {
                out.push(f.unwrap());
            }
        }
    }
    out
}

fn msg(to: &str, id: u64, payload: &'static [u8]) -> Frame {
    Frame::Send(Message {
        peer: name(to),
        id,
        flags: flags::TEXT,
        chunk: None,
        prev: None,
        payload: Bytes::from_static(payload),
    })
}

#[test]
fn handshake_negotiates_encryption_and_snappy_and_carries_frames() {
    let (mut a, mut r) = pair(&config("home"), &config("home")).unwrap();
    assert_eq!(a.choice.cipher, Cipher::ChaCha20Poly1305);
    assert_eq!(a.choice.compression, Compression::Snappy);
    assert_eq!(r.offer.name, Some(name("A")));
    assert_eq!(r.connection.cipher(), Cipher::ChaCha20Poly1305);
    let sent = vec![msg("B", 1, b"hello"), msg("B", 2, b"world"), Frame::Ping(3)];
    assert_eq!(exchange(&mut a, &mut r, &sent), sent);
    let back = vec![Frame::Pong(3), Frame::Close];
    assert_eq!(exchange(&mut r, &mut a, &back), back);
}

#[test]
fn static_keys_are_learned_by_both_sides() {
    let peer = config("home");
    let router = config("home");
    let (a, r) = pair(&peer, &router).unwrap();
    assert_eq!(&a.remote_key, router.identity.public());
    assert_eq!(&r.remote_key, peer.identity.public());
}

#[test]
fn small_frames_are_batched_into_one_record() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let frames: Vec<Frame> = (0..500)
        .map(|i| {
            msg(
                "B",
                i,
                b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            )
        })
        .collect();
    let got = exchange(&mut a, &mut r, &frames);
    assert_eq!(got.len(), 500);
    // 500 frames of ~80 bytes fit in one 64 KiB record.
    assert_eq!(a.connection.records_sealed(), 1);
}

#[test]
fn records_split_when_full() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let big = Frame::Send(Message {
        peer: name("B"),
        id: 1,
        flags: 0,
        chunk: None,
        prev: None,
        payload: Bytes::from(vec![7u8; 40_000]),
    });
    let got = exchange(&mut a, &mut r, &[big.clone(), big.clone(), big.clone()]);
    assert_eq!(got, vec![big.clone(), big.clone(), big]);
    assert_eq!(a.connection.records_sealed(), 3);
}

/// Full records sealed into separate buffers go out one buffer at a time instead of
/// being copied together, and the open record is sealed only after them.
#[test]
fn full_records_in_separate_buffers_go_out_in_turn() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let big = |id| {
        Frame::Send(Message {
            peer: name("B"),
            id,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from(vec![7u8; 40_000]),
        })
    };
    for id in 1..=3 {
        a.connection.send(&big(id)).unwrap();
    }
    // Two full records wait; the third is still open.
    assert_eq!(a.connection.records_sealed(), 2);
    let mut out = Vec::new();
    while let Some(bytes) = a.connection.poll_transmit().unwrap() {
        out.push(bytes);
        assert_eq!(a.connection.records_sealed(), 2.max(out.len() as u64));
    }
    assert_eq!(out.len(), 3, "one write per buffer");
    let mut got = Vec::new();
    for bytes in out {
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[0], bytes[1]])) + PREFIX_LEN,
            bytes.len()
        );
        got.extend(
            r.connection
                .open(&bytes[PREFIX_LEN..])
                .unwrap()
                .map(Result::unwrap),
        );
    }
    assert_eq!(got, vec![big(1), big(2), big(3)]);
}

#[test]
fn plaintext_only_when_both_sides_ask_for_it() {
    let mut plain_peer = config("m");
    plain_peer.allow_plaintext = true;
    let mut plain_router = config("m");
    plain_router.allow_plaintext = true;
    let (a, _) = pair(&plain_peer, &config("m")).unwrap();
    assert_eq!(a.choice.cipher, Cipher::ChaCha20Poly1305);
    let (a, _) = pair(&config("m"), &plain_router).unwrap();
    assert_eq!(a.choice.cipher, Cipher::ChaCha20Poly1305);
    let (mut a, mut r) = pair(&plain_peer, &plain_router).unwrap();
    assert_eq!(a.choice.cipher, Cipher::None);
    let frames = vec![msg("B", 1, b"visible")];
    assert_eq!(exchange(&mut a, &mut r, &frames), frames);
}

/// WebSocket framing: one record per `poll_transmit`, no prefix, opened in place.
#[test]
fn message_framing_carries_one_record_per_message() {
    for plaintext in [false, true] {
        let mut peer = config("m");
        let mut router = config("m");
        for c in [&mut peer, &mut router] {
            c.framing = Framing::Message;
            c.allow_plaintext = plaintext;
        }
        let (mut a, mut r) = pair(&peer, &router).unwrap();
        let big = Frame::Send(Message {
            peer: name("B"),
            id: 1,
            flags: 0,
            chunk: None,
            prev: None,
            payload: Bytes::from(vec![7u8; 40_000]),
        });
        let sent = vec![msg("B", 1, b"small"), big.clone(), big, Frame::Ping(9)];
        for f in &sent {
            a.connection.send(f).unwrap();
        }
        let mut got = Vec::new();
        let mut records = 0;
        while let Some(record) = a.connection.poll_transmit().unwrap() {
            records += 1;
            let tag = if plaintext { 0 } else { TAG_LEN };
            assert!(record.len() <= MAX_RECORD && record.len() > tag);
            for f in r
                .connection
                .open_owned(BytesMut::from(&record[..]))
                .unwrap()
            {
                got.push(f.unwrap());
            }
        }
        assert_eq!(got, sent);
        // [small, big] and [big, ping]: two 40 kB payloads never share a record.
        assert_eq!(records, 2);
        assert_eq!(a.connection.records_sealed(), 2);
        assert!(!a.connection.has_output());
    }
}

/// A record is its prefix, the frames sealed in place and the tag: nothing else.
#[test]
fn length_prefixed_records_are_prefix_ciphertext_and_tag() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let f = msg("B", 1, b"hello");
    a.connection.send(&f).unwrap();
    assert_eq!(a.connection.queued_bytes(), PREFIX_LEN + f.encoded_len());
    let bytes = a.connection.poll_transmit().unwrap().unwrap();
    let sealed_len = f.encoded_len() + TAG_LEN;
    assert_eq!(bytes.len(), PREFIX_LEN + sealed_len);
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
        sealed_len
    );
    assert_eq!(a.connection.poll_transmit().unwrap(), None);
    let frames: Vec<Frame> = r
        .connection
        .open(&bytes[PREFIX_LEN..])
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(frames, vec![f]);
}

/// Once the bytes handed out are written and dropped, the next record is sealed into
/// the same buffer: a connection sending one small message at a time allocates nothing.
#[test]
fn a_written_buffer_is_reused_for_the_next_record() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let mut next = |a: &mut Established, id| {
        let f = msg("B", id, b"hello");
        a.connection.send(&f).unwrap();
        let bytes = a.connection.poll_transmit().unwrap().unwrap();
        let opened: Vec<Frame> = r
            .connection
            .open(&bytes[PREFIX_LEN..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(opened, vec![f]);
        bytes
    };
    // Still held (a write in progress): the next record must go elsewhere.
    let first = next(&mut a, 1);
    let second = next(&mut a, 2);
    assert_ne!(first.as_ptr(), second.as_ptr());
    drop((first, second));
    let third = next(&mut a, 3);
    let at = third.as_ptr();
    drop(third);
    assert_eq!(next(&mut a, 4).as_ptr(), at);
}

fn aes_peer(mesh: &str) -> HandshakeConfig {
    let mut c = config(mesh);
    c.cipher = Cipher::Aes256Gcm;
    c
}

#[test]
fn default_peers_offer_only_chacha() {
    let (a, r) = pair(&config("m"), &config("m")).unwrap();
    assert_eq!(r.offer.ciphers, vec![Cipher::ChaCha20Poly1305]);
    assert_eq!(a.choice.cipher, Cipher::ChaCha20Poly1305);
}

#[test]
fn aes_is_offered_first_when_preferred_and_the_router_takes_it() {
    let (mut a, mut r) = pair(&aes_peer("m"), &config("m")).unwrap();
    assert_eq!(
        r.offer.ciphers,
        vec![Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305]
    );
    assert_eq!(a.choice.cipher, Cipher::Aes256Gcm);
    assert_eq!(a.connection.cipher(), Cipher::Aes256Gcm);
    assert_eq!(r.connection.cipher(), Cipher::Aes256Gcm);
    let sent = vec![msg("B", 1, b"fast"), Frame::Ping(1)];
    assert_eq!(exchange(&mut a, &mut r, &sent), sent);
    let back = vec![Frame::Pong(1)];
    assert_eq!(exchange(&mut r, &mut a, &back), back);
    // Plaintext still wins when both sides ask for it, as before.
    let mut plain_peer = aes_peer("m");
    plain_peer.allow_plaintext = true;
    let mut plain_router = config("m");
    plain_router.allow_plaintext = true;
    let (a, _) = pair(&plain_peer, &plain_router).unwrap();
    assert_eq!(a.choice.cipher, Cipher::None);
    let (a, _) = pair(&plain_peer, &config("m")).unwrap();
    assert_eq!(a.choice.cipher, Cipher::Aes256Gcm);
}

/// A router that does not know a cipher byte skips it and takes the next one: how a
/// router from before aes256gcm answers `[aes256gcm, chacha20poly1305]`.
#[test]
fn unknown_ciphers_in_an_offer_are_skipped() {
    let (_, mut msg1) = Initiator::start(&aes_peer("m"), Some(name("A")), Bytes::new()).unwrap();
    // In the clear part of message 1: the cipher list, length 2, [aes256gcm, chacha].
    let at = msg1
        .windows(3)
        .rposition(|w| w == [2, Cipher::Aes256Gcm.to_u8(), 1])
        .unwrap();
    msg1[at + 1] = 0x7f;
    let mut resp = Responder::new(&config("m")).unwrap();
    assert!(matches!(resp.read_offer(&msg1).unwrap(), Answer::Accept(_)));
    assert_eq!(
        resp.offer().unwrap().ciphers,
        vec![Cipher::ChaCha20Poly1305]
    );
}

#[test]
fn compression_off_on_either_side_gives_none() {
    let mut peer = config("m");
    peer.compression = false;
    assert_eq!(
        pair(&peer, &config("m")).unwrap().0.choice.compression,
        Compression::None
    );
    let mut router = config("m");
    router.compression = false;
    assert_eq!(
        pair(&config("m"), &router).unwrap().0.choice.compression,
        Compression::None
    );
}

#[test]
fn tampering_with_any_byte_of_message_1_breaks_the_handshake() {
    let peer = config("home");
    let router = config("home");
    let (_, msg1) = Initiator::start(&peer, Some(name("laptop")), Bytes::new()).unwrap();
    for i in 0..msg1.len() {
        // The same initiator state cannot be reused, so start again with a fresh one and
        // tamper with its message 1 at position i.
        let (init, mut m1) = Initiator::start(&peer, Some(name("laptop")), Bytes::new()).unwrap();
        m1[i] ^= 0x01;
        let mut resp = Responder::new(&router).unwrap();
        let err = match resp.read_offer(&m1) {
            Err(e) => e,
            Ok(Answer::Refuse(_, e)) => e,
            Ok(Answer::Accept(m2)) => init.read_choice(&m2).unwrap_err(),
        };
        assert!(
            matches!(
                err,
                ProtoError::Decrypt { .. }
                    | ProtoError::Malformed { .. }
                    | ProtoError::InvalidName { .. }
                    | ProtoError::Version { .. }
                    | ProtoError::MeshMismatch { .. }
                    | ProtoError::NoCommonAlgorithm { .. }
            ),
            "byte {i}: unexpected {err:?}"
        );
    }
}

#[test]
fn tampering_with_messages_2_and_3_is_detected() {
    let cfg = config("m");
    let (init, msg1) = Initiator::start(&cfg, Some(name("A")), Bytes::new()).unwrap();
    let mut resp = Responder::new(&cfg).unwrap();
    let Answer::Accept(mut msg2) = resp.read_offer(&msg1).unwrap() else {
        panic!()
    };
    let last = msg2.len() - 1;
    msg2[last] ^= 0x80;
    assert_eq!(
        init.read_choice(&msg2).unwrap_err(),
        ProtoError::Decrypt {
            during: "handshake message 2"
        }
    );

    let (init, msg1) = Initiator::start(&cfg, Some(name("A")), Bytes::new()).unwrap();
    let mut resp = Responder::new(&cfg).unwrap();
    let Answer::Accept(msg2) = resp.read_offer(&msg1).unwrap() else {
        panic!()
    };
    let (_, mut msg3) = init.read_choice(&msg2).unwrap();
    msg3[5] ^= 0x01;
    assert_eq!(
        resp.read_confirm(&msg3).unwrap_err(),
        ProtoError::Decrypt {
            during: "handshake message 3"
        }
    );
}

#[test]
fn wrong_mesh_key_is_refused() {
    let mut peer = config("m");
    peer.mesh_key = Some([1; 32]);
    let mut router = config("m");
    router.mesh_key = Some([2; 32]);
    // Both use XXpsk3 with different keys: the router finds out at message 3.
    assert_eq!(
        pair(&peer, &router).unwrap_err(),
        ProtoError::Decrypt {
            during: "handshake message 3"
        }
    );
    // No key against a router with one: with psk3 the offer is encrypted under the
    // ephemeral key, so the router cannot read the keyless offer.
    assert_eq!(
        pair(&config("m"), &router).unwrap_err(),
        ProtoError::Decrypt {
            during: "handshake message 1"
        }
    );
    peer.mesh_key = Some([2; 32]);
    assert!(pair(&peer, &router).is_ok());
}

#[test]
fn mesh_mismatch_is_refused_with_a_readable_reason() {
    let err = pair(&config("home"), &config("office")).unwrap_err();
    let ProtoError::Remote { code, text } = err else {
        panic!("got {err:?}")
    };
    assert_eq!(code, ErrorCode::MeshMismatch);
    assert!(text.contains("office") && text.contains("home"), "{text}");
}

#[test]
fn unknown_version_is_refused() {
    let cfg = config("m");
    let offer = Offer {
        version: 99,
        name: Some(name("A")),
        mesh: "m".into(),
        ciphers: vec![Cipher::ChaCha20Poly1305],
        compressions: vec![Compression::None],
        resume: Bytes::new(),
        slot: 0,
        max_record: MAX_RECORD,
        max_message: Limits::default().max_message,
        direct_port: 0,
        incarnation: 0,
        router_status: false,
    };
    let (init, msg1) = Initiator::start_with_offer(&cfg, offer).unwrap();
    let mut resp = Responder::new(&cfg).unwrap();
    let Answer::Refuse(msg2, err) = resp.read_offer(&msg1).unwrap() else {
        panic!()
    };
    assert_eq!(
        err,
        ProtoError::Version {
            ours: 1,
            theirs: 99
        }
    );
    assert!(matches!(
        init.read_choice(&msg2),
        Err(ProtoError::Remote {
            code: ErrorCode::Version,
            ..
        })
    ));
}

#[test]
fn oversized_handshake_message_is_refused() {
    let mut resp = Responder::new(&config("m")).unwrap();
    assert!(matches!(
        resp.read_offer(&vec![0u8; 5000]),
        Err(ProtoError::HandshakeTooLarge { .. })
    ));
    let mut resp = Responder::new(&config("m")).unwrap();
    assert!(matches!(
        resp.read_offer(&[1, 2, 3]),
        Err(ProtoError::Malformed { .. })
    ));
}

fn one_record(e: &mut Established, f: &Frame) -> Vec<u8> {
    e.connection.send(f).unwrap();
    let bytes = e.connection.poll_transmit().unwrap().unwrap();
    bytes[2..].to_vec()
}

#[test]
fn replayed_record_is_rejected() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let rec = one_record(&mut a, &msg("B", 1, b"pay me once"));
    assert!(r.connection.open(&rec).is_ok());
    assert_eq!(
        r.connection.open(&rec).unwrap_err(),
        ProtoError::Decrypt { during: "record" }
    );
}

#[test]
fn truncated_and_flipped_records_are_rejected() {
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let rec = one_record(&mut a, &msg("B", 1, b"hello"));
    assert_eq!(
        r.connection.open(&rec[..rec.len() - 1]).unwrap_err(),
        ProtoError::Decrypt { during: "record" }
    );
    assert_eq!(
        r.connection.open(&rec[..4]).unwrap_err(),
        ProtoError::Decrypt { during: "record" }
    );
    let (mut a, mut r) = pair(&config("m"), &config("m")).unwrap();
    let mut rec = one_record(&mut a, &msg("B", 1, b"hello"));
    rec[0] ^= 1;
    assert_eq!(
        r.connection.open(&rec).unwrap_err(),
        ProtoError::Decrypt { during: "record" }
    );
}

#[test]
fn oversized_record_is_rejected() {
    let (_, mut r) = pair(&config("m"), &config("m")).unwrap();
    assert!(matches!(
        r.connection.open(&vec![0u8; 70_000]),
        Err(ProtoError::RecordTooLarge { .. })
    ));
}

#[test]
fn offer_wire_snapshot() {
    let offer = Offer {
        version: 1,
        name: Some(name("PC2")),
        mesh: "home".into(),
        ciphers: vec![Cipher::ChaCha20Poly1305],
        compressions: vec![Compression::Snappy, Compression::None],
        resume: Bytes::new(),
        slot: 0,
        max_record: MAX_RECORD,
        max_message: Limits::default().max_message,
        direct_port: 0,
        incarnation: 0,
        router_status: false,
    };
    assert_eq!(
        hex::encode(offer.encode_for_test()),
        "010350433204686f6d65010102010000"
    );
    let offer = Offer {
        ciphers: vec![Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305],
        ..offer
    };
    assert_eq!(
        hex::encode(offer.encode_for_test()),
        "010350433204686f6d6502020102010000"
    );
}

#[test]
fn a_small_device_declares_its_limits_and_the_router_reads_them() {
    let mut cfg = config("home");
    cfg.limits.max_record = 4096;
    cfg.limits.max_message = 16 * 1024;
    let offer = Offer::new(&cfg, Some(name("PC2")), Bytes::new());
    // Two options after the fixed part: record limit (2, 4 bytes), message limit (3, 8).
    assert!(
        hex::encode(offer.encode_for_test()).ends_with("02040000100003080000000000004000"),
        "{}",
        hex::encode(offer.encode_for_test())
    );
    let (init, msg1) = Initiator::start_with_offer(&cfg, offer).unwrap();
    let mut resp = Responder::new(&config("home")).unwrap();
    let Answer::Accept(msg2) = resp.read_offer(&msg1).unwrap() else {
        panic!("refused")
    };
    let (_, msg3) = init.read_choice(&msg2).unwrap();
    let est = resp.read_confirm(&msg3).unwrap();
    assert_eq!(est.offer.max_record, 4096);
    assert_eq!(est.offer.max_message, 16 * 1024);
    // A record limit too small for a frame header is refused.
    let mut tiny = config("home");
    tiny.limits.max_record = 64;
    let mut offer = Offer::new(&tiny, Some(name("PC2")), Bytes::new());
    offer.max_record = 64;
    let (_, msg1) = Initiator::start_with_offer(&tiny, offer).unwrap();
    let mut resp = Responder::new(&config("home")).unwrap();
    assert!(!matches!(resp.read_offer(&msg1), Ok(Answer::Accept(_))));
}

/// A board's generator stand-in: xorshift from a fixed seed, advanced on every call (a
/// real board reads its TRNG).
fn board_fill(buf: &mut [u8]) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
    for b in buf.iter_mut() {
        let mut x = STATE.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        *b = x.to_le_bytes()[5];
    }
    true
}

fn broken_fill(_buf: &mut [u8]) -> bool {
    false
}

#[test]
fn a_caller_supplied_random_source_makes_keys_and_handshakes() {
    use crate::RandomSource;
    let board = RandomSource::from_fn(board_fill);
    let id = Identity::generate_from(board).unwrap();
    assert_ne!(id.public(), &[0u8; 32]);
    assert_ne!(Identity::generate_from(board).unwrap(), id);
    let peer = HandshakeConfig::new(id, "home");
    let router = config("home");
    let offer = Offer::new(&peer, Some(name("A")), Bytes::new());
    let (init, msg1) = Initiator::start_with_random(&peer, offer.clone(), board).unwrap();
    let mut resp = Responder::new_with_random(&router, board).unwrap();
    let Answer::Accept(msg2) = resp.read_offer(&msg1).unwrap() else {
        panic!("refused");
    };
    let (mut a, msg3) = init.read_choice(&msg2).unwrap();
    let mut r = resp.read_confirm(&msg3).unwrap();
    assert_eq!(r.remote_key, *peer.identity.public());
    let sent = vec![msg("B", 1, b"from a board")];
    assert_eq!(exchange(&mut a, &mut r, &sent), sent);

    // A generator that fails fails the handshake; it never runs on partial randomness.
    let broken = RandomSource::from_fn(broken_fill);
    assert!(Identity::generate_from(broken).is_err());
    assert!(Initiator::start_with_random(&peer, offer, broken).is_err());
}

#[test]
fn an_observer_that_asks_learns_how_the_router_stands_in_its_federation() {
    let peer = config("home");
    let router = config("home");
    let status = crate::RouterStatus {
        router: Some("site-a".into()),
        connected: false,
    };
    for asks in [false, true] {
        let mut offer = Offer::new(&peer, None, Bytes::new());
        offer.router_status = asks;
        let (init, msg1) = Initiator::start_with_offer(&peer, offer).unwrap();
        let mut resp = Responder::new(&router).unwrap();
        resp.set_router_status(status.clone());
        let Answer::Accept(msg2) = resp.read_offer(&msg1).unwrap() else {
            panic!("refused")
        };
        let (client, msg3) = init.read_choice(&msg2).unwrap();
        let server = resp.read_confirm(&msg3).unwrap();
        let expected = asks.then(|| status.clone());
        assert_eq!(client.choice.router_status, expected);
        assert_eq!(server.choice.router_status, expected);
    }
}
