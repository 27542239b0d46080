//! What crosses NATS, as bytes and names: no client, no clock.
//!
//! * **Subjects and buckets.** A name becomes one subject token by [`escape`] (letters,
//!   digits and `-` stay, every other byte is `_` and two hex digits), so any lanmesh name
//!   is a valid token and a valid key-value key. Messages for `name` in mesh `mesh` go on
//!   `lanmesh.<mesh>.to.<name>` ([`subject_for`]); presence is bucket `lanmesh_<mesh>`
//!   and name bindings bucket `lanmesh_<mesh>_names` (`_n` never comes out of `escape`, so
//!   no mesh's presence bucket is another's bindings bucket). Broadcasts from router
//!   `router` go on `lanmesh.<mesh>.all.<router>` ([`broadcast_subject`]), which every
//!   router of the mesh reads (`lanmesh.<mesh>.all.*`), each handing them to its own
//!   members: one NATS message per broadcast, however many routers and members.
//! * **Presence** ([`Presence`]): one JSON object per name served, keyed by the escaped
//!   name: the name, its key (hex), the router holding it, and the `PeerInfo` as the
//!   lanmesh frame encodes it (hex), so remote `peers` show what local ones do.
//! * **Bindings**: the value is the key's 64 hex digits.
//! * **Batches** ([`encode_batch`], [`decode_batch`]): the frames a router forwards to a
//!   remote name, in the lanmesh frame encoding, one after the other, several to a NATS
//!   message. Only `Deliver`, `Ack` and `Nack` may cross; payloads go as they came
//!   (compressed stays compressed).

use bytes::{Bytes, BytesMut};
use lanmesh_proto::frame::flags;
use lanmesh_proto::handshake::slot_of;
use lanmesh_proto::{Frame, Frames, NackReason, Name, PeerInfo};

/// Bytes of frames one NATS message carries at most (the server's default payload limit
/// is 1 MiB; one frame is at most a record, 64 KiB).
pub(crate) const MAX_BATCH: usize = 256 * 1024;

/// `text` as one subject token and key-value key: `[A-Za-z0-9-]` kept, every other byte
/// `_XX` (upper-case hex).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for text `escape` never makes.
pub(crate) fn unescape(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => {
                let hex = token.get(i + 1..i + 3)?;
                if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The subject messages for `name` travel on.
pub(crate) fn subject_for(mesh: &str, name: &str) -> String {
    format!("lanmesh.{}.to.{}", escape(mesh), escape(name))
}

/// The presence bucket of `mesh`.
pub(crate) fn presence_bucket(mesh: &str) -> String {
    format!("lanmesh_{}", escape(mesh))
}

/// The name-bindings bucket of `mesh`.
pub(crate) fn bindings_bucket(mesh: &str) -> String {
    format!("lanmesh_{}_names", escape(mesh))
}

/// The subject router `router` publishes its members' broadcasts on.
pub(crate) fn broadcast_subject(mesh: &str, router: &str) -> String {
    format!("lanmesh.{}.all.{}", escape(mesh), escape(router))
}

/// The subjects of every router's broadcasts in `mesh`.
pub(crate) fn broadcasts_of(mesh: &str) -> String {
    format!("lanmesh.{}.all.*", escape(mesh))
}

/// The broadcasts of one NATS message from another router: `Deliver`s flagged
/// `BROADCAST`, nothing else.
pub(crate) fn decode_broadcasts(payload: Bytes) -> Result<Vec<Frame>, WireError> {
    let mut out = Vec::new();
    for f in Frames::new(payload) {
        match f? {
            Frame::Deliver(m) if m.flags & flags::BROADCAST != 0 => out.push(Frame::Deliver(m)),
            _ => {
                return Err(WireError::Kind {
                    kind: "non-broadcast",
                });
            }
        }
    }
    Ok(out)
}

/// One name a router serves, as stored in the presence bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presence {
    /// The router holding it.
    pub(crate) router: String,
    /// The member, as its router shows it.
    pub(crate) info: PeerInfo,
}

/// Why a stored value was not understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WireError {
    /// Not the JSON object expected, or a field is wrong.
    #[error("bad presence entry: {what}")]
    Presence {
        /// What is wrong.
        what: &'static str,
    },
    /// A batch of frames did not decode.
    #[error("bad frame batch: {0}")]
    Batch(#[from] lanmesh_proto::ProtoError),
    /// A frame that has no business crossing routers.
    #[error("a {kind} frame may not cross routers")]
    Kind {
        /// Its kind.
        kind: &'static str,
    },
}

impl Presence {
    /// The JSON value stored under the escaped name.
    pub(crate) fn encode(&self) -> Bytes {
        let mut info = BytesMut::new();
        // A `PeerInfo` is at most a few hundred bytes: it always fits a frame.
        let _ = Frame::PeerJoined(self.info.clone()).encode(&mut info);
        let value = serde_json::json!({
            "v": 1,
            "name": self.info.name.as_str(),
            "key": hex::encode(self.info.key),
            "router": self.router,
            "info": hex::encode(&info),
        });
        Bytes::from(value.to_string())
    }

    /// Reads a stored value; `key` is the bucket key it was found under.
    pub(crate) fn decode(key: &str, value: &[u8]) -> Result<Self, WireError> {
        let bad = |what| WireError::Presence { what };
        let v: serde_json::Value = serde_json::from_slice(value).map_err(|_| bad("not JSON"))?;
        let field = |f: &str| v.get(f).and_then(serde_json::Value::as_str);
        let router = field("router").ok_or(bad("no router"))?.to_owned();
        let info = hex::decode(field("info").ok_or(bad("no info"))?).map_err(|_| bad("info"))?;
        let info = match Frames::new(Bytes::from(info)).next() {
            Some(Ok(Frame::PeerJoined(info))) => info,
            _ => return Err(bad("info is not a peer")),
        };
        if escape(info.name.as_str()) != key || field("name") != Some(info.name.as_str()) {
            return Err(bad("the name is not the key's"));
        }
        if field("key") != Some(hex::encode(info.key).as_str()) {
            return Err(bad("the key is not the peer's"));
        }
        Ok(Self { router, info })
    }
}

/// A binding's stored value: the key in hex.
pub(crate) fn encode_binding(key: &[u8; 32]) -> Bytes {
    Bytes::from(hex::encode(key))
}

/// The key a binding's stored value names.
pub(crate) fn decode_binding(value: &[u8]) -> Option<[u8; 32]> {
    lanmesh_proto::handshake::key_from_hex(std::str::from_utf8(value).ok()?)
}

/// The frames, encoded one after the other, in NATS messages of at most `max` bytes (a
/// frame larger than that goes alone). Frames that do not encode (none do: each came in a
/// record) are left out.
pub(crate) fn encode_batch(frames: &[Frame], max: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    for f in frames {
        if !buf.is_empty() && buf.len() + f.encoded_len() > max {
            out.push(buf.split().freeze());
        }
        if let Err(e) = f.encode(&mut buf) {
            tracing::warn!(error = %e, "a frame too large to forward was left out");
        }
    }
    if !buf.is_empty() {
        out.push(buf.freeze());
    }
    out
}

/// The frames of one NATS message: `Deliver`, `Ack` and `Nack` only.
pub(crate) fn decode_batch(payload: Bytes) -> Result<Vec<Frame>, WireError> {
    let mut out = Vec::new();
    for f in Frames::new(payload) {
        let f = f?;
        match f {
            Frame::Deliver(_) | Frame::Ack { .. } | Frame::Nack { .. } => out.push(f),
            Frame::Send(_) => return Err(WireError::Kind { kind: "Send" }),
            _ => return Err(WireError::Kind { kind: "control" }),
        }
    }
    Ok(out)
}

/// The id slot of the session a frame for a local name goes to, as the sending router's
/// session core chose it: answers (replies, a file's answers) to the session that sent
/// what they answer, acks and nacks to the session whose message they are about,
/// anything else to the session receiving the name's messages (slot 0).
pub(crate) fn slot_for(frame: &Frame) -> u32 {
    match frame {
        Frame::Deliver(m) => match m.prev {
            Some(answered) if m.flags & (flags::REPLY | flags::BLOB) != 0 => slot_of(answered),
            _ => 0,
        },
        Frame::Ack { id, .. } | Frame::Nack { id, .. } => slot_of(*id),
        _ => 0,
    }
}

/// Whether the sender's acked stream sends `frame` again until it is acknowledged (part
/// of a `send_acked` message; not a reply, a file step or a broadcast). A router that
/// cannot pass such a frame on for a moment (NATS out of reach) drops it rather than
/// fail the send with a `Nack`: the sender's resend fills the gap and the recipient
/// drops what arrives twice, so the message still arrives once, in order.
pub(crate) fn resent_by_sender(frame: &Frame) -> bool {
    let Frame::Deliver(m) = frame else {
        return false;
    };
    m.flags & flags::ACK_REQUESTED != 0
        && m.flags & (flags::REPLY | flags::BLOB | flags::BROADCAST) == 0
        && m.prev.is_some()
}

/// The `Nack` telling the sender of `frame` (a message for `dest`) it was not delivered,
/// and the sender's name; `None` for broadcasts and for acks and nacks (nobody waits for
/// those).
pub(crate) fn nack_for(dest: &Name, frame: &Frame, reason: NackReason) -> Option<(Name, Frame)> {
    let Frame::Deliver(m) = frame else {
        return None;
    };
    if m.flags & flags::BROADCAST != 0 {
        return None;
    }
    // Each message once: its first chunk stands for all of it.
    if m.chunk.is_some_and(|c| c.offset != 0) {
        return None;
    }
    let nack = Frame::Nack {
        peer: dest.clone(),
        id: m.id,
        reason,
    };
    Some((m.peer.clone(), nack))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanmesh_proto::frame::Message;
    use lanmesh_proto::{Cipher, Compression, Transport};

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn info(n: &str) -> PeerInfo {
        PeerInfo {
            name: name(n),
            transport: Transport::Tcp,
            cipher: Cipher::ChaCha20Poly1305,
            compression: Compression::Snappy,
            key: [7; 32],
            addr: "127.0.0.1:5000".into(),
            joined_ms: 42,
            direct: String::new(),
            incarnation: 0,
        }
    }

    fn deliver(from: &str, id: u64, flags: u8, payload: &'static [u8]) -> Frame {
        Frame::Deliver(Message {
            peer: name(from),
            id,
            flags,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(payload),
        })
    }

    #[test]
    fn escaped_names_are_single_tokens_and_come_back() {
        for n in ["laptop", "a.b", "x*y>z", "snow_man", "café", "_2E", "A-b_"] {
            let e = escape(n);
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{e}"
            );
            assert_eq!(unescape(&e).as_deref(), Some(n));
        }
        assert_eq!(escape("a.b"), "a_2Eb");
        assert_ne!(escape("a_b"), escape("a.b"));
        assert_eq!(subject_for("home", "pc.1"), "lanmesh.home.to.pc_2E1");
        assert_eq!(
            broadcast_subject("home", "lab.a"),
            "lanmesh.home.all.lab_2Ea"
        );
        assert_eq!(broadcasts_of("home"), "lanmesh.home.all.*");
        assert_eq!(unescape("a_2e"), None, "lower-case hex is never made");
        assert_eq!(unescape("a.b"), None);
    }

    #[test]
    fn presence_and_bindings_buckets_never_collide() {
        assert_eq!(presence_bucket("home"), "lanmesh_home");
        assert_eq!(bindings_bucket("home"), "lanmesh_home_names");
        // A mesh whose name ends in "_names" escapes its `_`.
        assert_ne!(presence_bucket("home_names"), bindings_bucket("home"));
    }

    #[test]
    fn presence_round_trips_and_checks_the_key_it_is_under() {
        let p = Presence {
            router: "r1".into(),
            info: info("pc.1"),
        };
        let v = p.encode();
        assert_eq!(Presence::decode("pc_2E1", &v).unwrap(), p);
        assert!(Presence::decode("other", &v).is_err());
        assert!(Presence::decode("pc_2E1", b"{}").is_err());
        assert!(Presence::decode("pc_2E1", b"not json").is_err());
        let binding = encode_binding(&[9; 32]);
        assert_eq!(decode_binding(&binding), Some([9; 32]));
        assert_eq!(decode_binding(b"zz"), None);
    }

    #[test]
    fn batches_keep_frames_in_order_and_split_at_the_limit() {
        let frames: Vec<Frame> = (0..10).map(|i| deliver("a", i, 0, b"0123456789")).collect();
        let one = frames[0].encoded_len();
        let batches = encode_batch(&frames, one * 3);
        assert_eq!(batches.len(), 4);
        let back: Vec<Frame> = batches
            .into_iter()
            .flat_map(|b| decode_batch(b).unwrap())
            .collect();
        assert_eq!(back, frames);
    }

    #[test]
    fn only_deliveries_and_their_answers_cross() {
        let mut buf = BytesMut::new();
        Frame::Ack {
            peer: name("a"),
            id: 1,
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(decode_batch(buf.clone().freeze()).unwrap().len(), 1);
        Frame::ListPeers.encode(&mut buf).unwrap();
        assert!(matches!(
            decode_batch(buf.freeze()),
            Err(WireError::Kind { .. })
        ));
        assert!(decode_batch(Bytes::from_static(&[1, 0])).is_err());
    }

    #[test]
    fn only_broadcasts_come_on_the_broadcast_subjects() {
        let frames = vec![
            deliver("a", 1, flags::BROADCAST, b"x"),
            deliver("a", 2, flags::BROADCAST | flags::TEXT, b"y"),
        ];
        let batch = encode_batch(&frames, MAX_BATCH).remove(0);
        assert_eq!(decode_broadcasts(batch).unwrap(), frames);
        let direct = encode_batch(&[deliver("a", 3, 0, b"z")], MAX_BATCH).remove(0);
        assert!(decode_broadcasts(direct).is_err());
    }

    #[test]
    fn only_acked_stream_messages_are_left_to_their_senders_resend() {
        let with = |flags, prev| {
            Frame::Deliver(Message {
                peer: name("a"),
                id: 2,
                flags,
                chunk: None,
                prev,
                payload: Bytes::new(),
            })
        };
        assert!(resent_by_sender(&with(flags::ACK_REQUESTED, Some(1))));
        assert!(!resent_by_sender(&with(0, None)), "a plain send");
        assert!(!resent_by_sender(&with(flags::REQUEST, None)), "a request");
        assert!(!resent_by_sender(&with(
            flags::ACK_REQUESTED | flags::REPLY,
            Some(1)
        )));
        assert!(!resent_by_sender(&with(
            flags::ACK_REQUESTED | flags::BLOB,
            Some(1)
        )));
        assert!(!resent_by_sender(&Frame::Ack {
            peer: name("a"),
            id: 2
        }));
    }

    #[test]
    fn answers_go_to_the_slot_that_asked_and_broadcasts_are_not_nacked() {
        let slot_3 = 3u64 << 40;
        assert_eq!(slot_of(slot_3 + 5), 3, "the slot sits in the id's top bits");
        let reply = Frame::Deliver(Message {
            peer: name("b"),
            id: 9,
            flags: flags::REPLY,
            chunk: None,
            prev: Some(slot_3 + 5),
            payload: Bytes::new(),
        });
        assert_eq!(slot_for(&reply), 3);
        assert_eq!(slot_for(&deliver("b", slot_3, 0, b"")), 0);
        let ack = Frame::Ack {
            peer: name("b"),
            id: slot_3 + 1,
        };
        assert_eq!(slot_for(&ack), 3);
        let (to, nack) = nack_for(
            &name("dest"),
            &deliver("b", 4, 0, b""),
            NackReason::UnknownPeer,
        )
        .unwrap();
        assert_eq!(to, name("b"));
        assert!(matches!(nack, Frame::Nack { id: 4, ref peer, .. } if peer == &name("dest")));
        assert!(
            nack_for(
                &name("d"),
                &deliver("b", 4, flags::BROADCAST, b""),
                NackReason::UnknownPeer
            )
            .is_none()
        );
        assert!(nack_for(&name("d"), &ack, NackReason::UnknownPeer).is_none());
    }
}
