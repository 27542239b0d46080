//! Frames: the units of meaning inside a record.
//!
//! A record's plaintext is one or more frames back to back. Each frame is
//!
//! ```text
//! kind: u8 | body length: u16 BE | body
//! ```
//!
//! so a receiver can skip nothing and trust nothing: every length is checked against what
//! is left before anything is sliced. Messages larger than one record travel as several
//! `Send`/`Deliver` frames with the `CHUNKED` flag, each carrying `(offset, total)`.
//!
//! Message flow through the router:
//! 1. A client sends `Send { peer: recipient }` (or `Broadcast`).
//! 2. The router forwards it as `Deliver { peer: sender }`, payload untouched, or answers
//!    `Nack { peer: recipient, reason }` when it cannot.
//! 3. If the sender asked for an acknowledgement (`ACK_REQUESTED`), the recipient's client
//!    sends `Ack { peer: sender }` once the message is queued for the application, and the
//!    router forwards it as `Ack { peer: recipient }`.
//!
//! A message of an acked stream (see [`Message::prev`]) travels as the sequenced kinds of
//! `Send`/`Deliver`, whose body carries `prev` after the flags.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::algorithms::{Cipher, Compression, Transport};
pub use crate::codes::{ErrorCode, NackReason};
use crate::error::{ProtoError, Result};
use crate::limits::MAX_RECORD_PLAINTEXT;
use crate::name::Name;
use crate::prelude::*;
use crate::wire::{Reader, put_long, put_short, truncate_utf8};

/// Bytes before a frame's body.
pub const FRAME_HEADER_LEN: usize = 3;
/// Largest frame body: a frame always fits in one record.
pub const MAX_FRAME_BODY: usize = MAX_RECORD_PLAINTEXT - FRAME_HEADER_LEN;
/// Error texts are cut to this many bytes.
pub const MAX_ERROR_TEXT: usize = 1024;

/// Bits of [`Message::flags`].
pub mod flags {
    /// The payload is Snappy-compressed (raw format).
    pub const COMPRESSED: u8 = 0x01;
    /// The sender wants an end-to-end `Ack`.
    pub const ACK_REQUESTED: u8 = 0x02;
    /// The payload is UTF-8 text (browsers get a string instead of bytes).
    pub const TEXT: u8 = 0x04;
    /// The frame is one chunk of a larger message; `(offset, total)` follow the id.
    /// Set and cleared by the codec from [`super::Message::chunk`].
    pub const CHUNKED: u8 = 0x08;
    /// The message was broadcast to every peer.
    pub const BROADCAST: u8 = 0x10;
    /// The sender expects a reply (request/reply).
    pub const REQUEST: u8 = 0x20;
    /// The message answers a request; its payload starts with the request's id
    /// (8 bytes, big-endian), then the reply data.
    pub const REPLY: u8 = 0x40;
    /// The payload is one step of a file transfer, a [`crate::blob::BlobFrame`]; the
    /// clients handle it, the router forwards it like any other message.
    pub const BLOB: u8 = 0x80;
}

/// Position of a chunk inside a large message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset of this chunk's payload in the whole (possibly compressed) message.
    pub offset: u64,
    /// Length of the whole (possibly compressed) message.
    pub total: u64,
}

/// An application message, or one chunk of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The recipient in `Send`, the sender in `Deliver`.
    pub peer: Name,
    /// The sender's serial number for this message.
    pub id: u64,
    /// [`flags`] bits, without `CHUNKED` (that one is derived from `chunk`).
    pub flags: u8,
    /// Set when this frame carries one chunk of a larger message.
    pub chunk: Option<Chunk>,
    /// For acked messages: the id of the previous message of the sender's acked stream
    /// to this recipient that the recipient must have before this one (0: none). The
    /// recipient uses it to keep the stream in order and exactly-once across reconnects.
    pub prev: Option<u64>,
    /// The (possibly compressed) payload bytes.
    pub payload: Bytes,
}

/// A message to every other peer; the router turns it into `Deliver`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// The sender's serial number for this message.
    pub id: u64,
    /// [`flags`] bits, without `CHUNKED`.
    pub flags: u8,
    /// Set when this frame carries one chunk of a larger message.
    pub chunk: Option<Chunk>,
    /// The (possibly compressed) payload bytes.
    pub payload: Bytes,
}

/// What the router knows about a member, as shown by `lanmesh peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's name.
    pub name: Name,
    /// How it is connected.
    pub transport: Transport,
    /// Record protection of its connection.
    pub cipher: Cipher,
    /// Compression it negotiated.
    pub compression: Compression,
    /// Its static public key.
    pub key: [u8; 32],
    /// Its address as the router sees it (text, at most 255 bytes).
    pub addr: String,
    /// When it joined, in milliseconds since the Unix epoch (router clock).
    pub joined_ms: u64,
    /// Where other native peers may open a direct link to it (`ip:port`, at most 255
    /// bytes): the address the router saw it connect from with the port it offered
    /// ([`crate::Offer::direct_port`]). Empty: no direct links to it.
    pub direct: String,
    /// The process behind the name, as it offered it ([`crate::Offer::incarnation`]; 0:
    /// unknown). A name that joins again with the same incarnation is the same process
    /// back (after its router restarted, say), whose acked streams go on; another one is
    /// a new process, with which they start over.
    pub incarnation: u64,
}

/// Everything that travels inside records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Client → router: a message for one peer.
    Send(Message),
    /// Router → client: a message from a peer.
    Deliver(Message),
    /// Client → router: a message for every other peer.
    Broadcast(Broadcast),
    /// End-to-end acknowledgement of message `id`.
    Ack {
        /// The recipient (client → router) or the acknowledging peer (router → client).
        peer: Name,
        /// The acknowledged message's id.
        id: u64,
    },
    /// Message `id` to `peer` was not delivered.
    Nack {
        /// The peer the message was for.
        peer: Name,
        /// The refused message's id.
        id: u64,
        /// Why.
        reason: NackReason,
    },
    /// Router → client, once after the handshake: you are in the mesh under `name`.
    Welcome {
        /// The name the router bound to this connection.
        name: Name,
    },
    /// Router → client: a page of the member list (after `Welcome`, or in answer to
    /// `ListPeers`). `last` marks the final page.
    PeerList {
        /// This is the final page.
        last: bool,
        /// Members on this page.
        peers: Vec<PeerInfo>,
    },
    /// Router → clients: a peer joined.
    PeerJoined(PeerInfo),
    /// Router → clients: a peer left.
    PeerLeft {
        /// The departed peer.
        name: Name,
    },
    /// Client → router: send me the member list.
    ListPeers,
    /// Liveness probe, answered by `Pong` with the same value.
    Ping(u64),
    /// Answer to `Ping`.
    Pong(u64),
    /// The sender is closing the connection because of this error.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail (at most 1 KiB).
        text: String,
    },
    /// Orderly close: everything before this frame has been processed. The other side
    /// answers with `Close` and both stop.
    Close,
    /// Moving traffic onto a direct link. Client → router: the sender stops sending to
    /// `peer` through the router here; router → client (`peer` is then the sender):
    /// everything the sender sent to you through the router before this has arrived.
    /// The recipient echoes it over the direct link (`peer` is then ignored), and only then
    /// does the sender go on there, so the switch never reorders its messages.
    Mark {
        /// The other end (see above).
        peer: Name,
        /// Names this switch: an echo of an older one is ignored.
        token: u64,
    },
}

mod kind {
    pub(super) const SEND: u8 = 0x01;
    pub(super) const DELIVER: u8 = 0x02;
    pub(super) const BROADCAST: u8 = 0x03;
    pub(super) const ACK: u8 = 0x04;
    pub(super) const NACK: u8 = 0x05;
    pub(super) const WELCOME: u8 = 0x06;
    pub(super) const PEER_LIST: u8 = 0x07;
    pub(super) const PEER_JOINED: u8 = 0x08;
    pub(super) const PEER_LEFT: u8 = 0x09;
    pub(super) const LIST_PEERS: u8 = 0x0a;
    pub(super) const PING: u8 = 0x0b;
    pub(super) const PONG: u8 = 0x0c;
    pub(super) const ERROR: u8 = 0x0d;
    pub(super) const CLOSE: u8 = 0x0e;
    /// `Send`/`Deliver` of a message in an acked stream: `prev` follows the flags.
    pub(super) const SEND_SEQUENCED: u8 = 0x0f;
    pub(super) const DELIVER_SEQUENCED: u8 = 0x10;
    pub(super) const MARK: u8 = 0x11;
}

fn short_len(b: &[u8]) -> usize {
    1 + b.len().min(255)
}

fn body_len(chunk: &Option<Chunk>, prev: Option<u64>, payload: &Bytes) -> usize {
    8 + 1
        + if chunk.is_some() { 16 } else { 0 }
        + if prev.is_some() { 8 } else { 0 }
        + payload.len()
}

/// The body of a message: id, flags, then `prev` (sequenced kinds only), then
/// `(offset, total)` if `CHUNKED`, then the payload.
fn put_body(
    buf: &mut impl BufMut,
    id: u64,
    flags: u8,
    chunk: &Option<Chunk>,
    prev: Option<u64>,
    payload: &Bytes,
) {
    buf.put_u64(id);
    let mut bits = flags & !flags::CHUNKED;
    if chunk.is_some() {
        bits |= flags::CHUNKED;
    }
    buf.put_u8(bits);
    if let Some(p) = prev {
        buf.put_u64(p);
    }
    if let Some(c) = chunk {
        buf.put_u64(c.offset);
        buf.put_u64(c.total);
    }
    buf.put_slice(payload);
}

struct Body {
    id: u64,
    flags: u8,
    chunk: Option<Chunk>,
    prev: Option<u64>,
    payload: Bytes,
}

fn read_body(r: &mut Reader, sequenced: bool) -> Result<Body> {
    let id = r.u64()?;
    let raw = r.u8()?;
    let prev = if sequenced { Some(r.u64()?) } else { None };
    let chunk = if raw & flags::CHUNKED != 0 {
        Some(Chunk {
            offset: r.u64()?,
            total: r.u64()?,
        })
    } else {
        None
    };
    Ok(Body {
        id,
        flags: raw & !flags::CHUNKED,
        chunk,
        prev,
        payload: r.rest(),
    })
}

fn peer_info_len(p: &PeerInfo) -> usize {
    short_len(p.name.as_str().as_bytes())
        + 3
        + 32
        + short_len(truncate_utf8(&p.addr, 255).as_bytes())
        + 8
        + short_len(truncate_utf8(&p.direct, 255).as_bytes())
        + 8
}

fn put_peer_info(buf: &mut impl BufMut, p: &PeerInfo) {
    put_short(buf, p.name.as_str().as_bytes());
    buf.put_u8(p.transport.to_u8());
    buf.put_u8(p.cipher.to_u8());
    buf.put_u8(p.compression.to_u8());
    buf.put_slice(&p.key);
    put_short(buf, truncate_utf8(&p.addr, 255).as_bytes());
    buf.put_u64(p.joined_ms);
    put_short(buf, truncate_utf8(&p.direct, 255).as_bytes());
    buf.put_u64(p.incarnation);
}

fn read_peer_info(r: &mut Reader) -> Result<PeerInfo> {
    Ok(PeerInfo {
        name: r.name()?,
        transport: Transport::from_u8(r.u8()?)?,
        cipher: Cipher::from_u8(r.u8()?)?,
        compression: Compression::from_u8(r.u8()?)?,
        key: r.array32()?,
        addr: r.short_string()?,
        joined_ms: r.u64()?,
        direct: r.short_string()?,
        incarnation: r.u64()?,
    })
}

impl PeerInfo {
    /// Bytes this entry takes in a `PeerList` frame (for paging).
    pub fn encoded_len(&self) -> usize {
        peer_info_len(self)
    }
}

impl Frame {
    /// Builds an `Error` frame, cutting the text to [`MAX_ERROR_TEXT`].
    pub fn error(code: ErrorCode, text: impl AsRef<str>) -> Self {
        Frame::Error {
            code,
            text: truncate_utf8(text.as_ref(), MAX_ERROR_TEXT).to_owned(),
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Frame::Send(m) if m.prev.is_some() => kind::SEND_SEQUENCED,
            Frame::Deliver(m) if m.prev.is_some() => kind::DELIVER_SEQUENCED,
            Frame::Send(_) => kind::SEND,
            Frame::Deliver(_) => kind::DELIVER,
            Frame::Broadcast(_) => kind::BROADCAST,
            Frame::Ack { .. } => kind::ACK,
            Frame::Nack { .. } => kind::NACK,
            Frame::Welcome { .. } => kind::WELCOME,
            Frame::PeerList { .. } => kind::PEER_LIST,
            Frame::PeerJoined(_) => kind::PEER_JOINED,
            Frame::PeerLeft { .. } => kind::PEER_LEFT,
            Frame::ListPeers => kind::LIST_PEERS,
            Frame::Ping(_) => kind::PING,
            Frame::Pong(_) => kind::PONG,
            Frame::Error { .. } => kind::ERROR,
            Frame::Close => kind::CLOSE,
            Frame::Mark { .. } => kind::MARK,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Send(m) | Frame::Deliver(m) => {
                short_len(m.peer.as_str().as_bytes()) + body_len(&m.chunk, m.prev, &m.payload)
            }
            Frame::Broadcast(b) => body_len(&b.chunk, None, &b.payload),
            Frame::Ack { peer, .. } | Frame::Mark { peer, .. } => {
                short_len(peer.as_str().as_bytes()) + 8
            }
            Frame::Nack { peer, .. } => short_len(peer.as_str().as_bytes()) + 9,
            Frame::Welcome { name } | Frame::PeerLeft { name } => {
                short_len(name.as_str().as_bytes())
            }
            Frame::PeerList { peers, .. } => 1 + 2 + peers.iter().map(peer_info_len).sum::<usize>(),
            Frame::PeerJoined(p) => peer_info_len(p),
            Frame::ListPeers | Frame::Close => 0,
            Frame::Ping(_) | Frame::Pong(_) => 8,
            Frame::Error { text, .. } => 2 + 2 + text.len().min(usize::from(u16::MAX)),
        }
    }

    /// Bytes this frame takes on the wire, header included.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.body_len()
    }

    /// Appends the frame to `buf`. Fails only when the frame cannot fit in one record —
    /// checked before anything is written, so `buf` is unchanged on error.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<()> {
        let body = self.body_len();
        let Some(len) = u16::try_from(body).ok().filter(|_| body <= MAX_FRAME_BODY) else {
            return Err(ProtoError::FrameTooLarge {
                len: body + FRAME_HEADER_LEN,
                max: MAX_RECORD_PLAINTEXT,
            });
        };
        buf.reserve(FRAME_HEADER_LEN + body);
        buf.put_u8(self.kind());
        buf.put_u16(len);
        match self {
            Frame::Send(m) | Frame::Deliver(m) => {
                put_short(buf, m.peer.as_str().as_bytes());
                put_body(buf, m.id, m.flags, &m.chunk, m.prev, &m.payload);
            }
            Frame::Broadcast(b) => put_body(buf, b.id, b.flags, &b.chunk, None, &b.payload),
            Frame::Ack { peer, id } | Frame::Mark { peer, token: id } => {
                put_short(buf, peer.as_str().as_bytes());
                buf.put_u64(*id);
            }
            Frame::Nack { peer, id, reason } => {
                put_short(buf, peer.as_str().as_bytes());
                buf.put_u64(*id);
                buf.put_u8(reason.to_u8());
            }
            Frame::Welcome { name } | Frame::PeerLeft { name } => {
                put_short(buf, name.as_str().as_bytes());
            }
            Frame::PeerList { last, peers } => {
                buf.put_u8(u8::from(*last));
                buf.put_u16(u16::try_from(peers.len()).unwrap_or(u16::MAX));
                for p in peers.iter().take(usize::from(u16::MAX)) {
                    put_peer_info(buf, p);
                }
            }
            Frame::PeerJoined(p) => put_peer_info(buf, p),
            Frame::ListPeers | Frame::Close => {}
            Frame::Ping(v) | Frame::Pong(v) => buf.put_u64(*v),
            Frame::Error { code, text } => {
                buf.put_u16(code.to_u16());
                put_long(buf, text.as_bytes());
            }
        }
        Ok(())
    }

    /// Parses one frame body of the given kind.
    /// `last_name`: the name the record's previous frame named, reused when the same.
    fn decode_body(kind: u8, body: Bytes, last_name: &mut Option<Name>) -> Result<Frame> {
        let mut r = Reader::new(body, "frame");
        let frame = match kind {
            kind::SEND | kind::DELIVER | kind::SEND_SEQUENCED | kind::DELIVER_SEQUENCED => {
                let sequenced = matches!(kind, kind::SEND_SEQUENCED | kind::DELIVER_SEQUENCED);
                let peer = r.name_like(last_name)?;
                let Body {
                    id,
                    flags,
                    chunk,
                    prev,
                    payload,
                } = read_body(&mut r, sequenced)?;
                check_chunk(&chunk, &payload)?;
                let m = Message {
                    peer,
                    id,
                    flags,
                    chunk,
                    prev,
                    payload,
                };
                if matches!(kind, kind::SEND | kind::SEND_SEQUENCED) {
                    Frame::Send(m)
                } else {
                    Frame::Deliver(m)
                }
            }
            kind::BROADCAST => {
                let Body {
                    id,
                    flags,
                    chunk,
                    payload,
                    ..
                } = read_body(&mut r, false)?;
                check_chunk(&chunk, &payload)?;
                Frame::Broadcast(Broadcast {
                    id,
                    flags,
                    chunk,
                    payload,
                })
            }
            kind::ACK => Frame::Ack {
                peer: r.name_like(last_name)?,
                id: r.u64()?,
            },
            kind::NACK => Frame::Nack {
                peer: r.name_like(last_name)?,
                id: r.u64()?,
                reason: NackReason::from_u8(r.u8()?),
            },
            kind::MARK => Frame::Mark {
                peer: r.name_like(last_name)?,
                token: r.u64()?,
            },
            kind::WELCOME => Frame::Welcome { name: r.name()? },
            kind::PEER_LIST => {
                let last = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(ProtoError::Malformed { what: "peer list" }),
                };
                let count = usize::from(r.u16()?);
                // Each entry is at least 54 bytes, so `count` cannot make us allocate more
                // than the frame could hold.
                let mut peers = Vec::with_capacity(count.min(MAX_FRAME_BODY / 54));
                for _ in 0..count {
                    peers.push(read_peer_info(&mut r)?);
                }
                Frame::PeerList { last, peers }
            }
            kind::PEER_JOINED => Frame::PeerJoined(read_peer_info(&mut r)?),
            kind::PEER_LEFT => Frame::PeerLeft { name: r.name()? },
            kind::LIST_PEERS => Frame::ListPeers,
            kind::PING => Frame::Ping(r.u64()?),
            kind::PONG => Frame::Pong(r.u64()?),
            kind::ERROR => {
                let code = ErrorCode::from_u16(r.u16()?);
                let text = r.long_string()?;
                Frame::Error { code, text }
            }
            kind::CLOSE => Frame::Close,
            other => return Err(ProtoError::UnknownFrame { kind: other }),
        };
        r.finish()?;
        Ok(frame)
    }
}

fn check_chunk(chunk: &Option<Chunk>, payload: &Bytes) -> Result<()> {
    if let Some(c) = chunk {
        let end = c.offset.checked_add(payload.len() as u64);
        if end.is_none_or(|e| e > c.total) {
            return Err(ProtoError::Malformed { what: "chunk" });
        }
    }
    Ok(())
}

/// Iterates over the frames of one record's plaintext. Stops at the first error; the
/// connection must then be closed.
#[derive(Debug)]
pub struct Frames {
    buf: Bytes,
    failed: bool,
    /// The last peer name read, for the next frame naming the same peer.
    last_name: Option<Name>,
}

impl Frames {
    /// Frames in `plaintext`, which must be a whole record.
    pub fn new(plaintext: Bytes) -> Self {
        Self {
            buf: plaintext,
            failed: false,
            last_name: None,
        }
    }
}

impl Iterator for Frames {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let result = (|| {
            if self.buf.len() < FRAME_HEADER_LEN {
                return Err(ProtoError::Malformed {
                    what: "frame header",
                });
            }
            let kind = self.buf[0];
            let len = usize::from(u16::from_be_bytes([self.buf[1], self.buf[2]]));
            if self.buf.len() < FRAME_HEADER_LEN + len {
                return Err(ProtoError::Malformed {
                    what: "frame length",
                });
            }
            // One reference taken per frame: the header is stepped over, not split off.
            self.buf.advance(FRAME_HEADER_LEN);
            let body = self.buf.split_to(len);
            Frame::decode_body(kind, body, &mut self.last_name)
        })();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn roundtrip(f: &Frame) -> Frame {
        let mut buf = BytesMut::new();
        f.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), f.encoded_len());
        let mut frames = Frames::new(buf.freeze());
        let out = frames.next().unwrap().unwrap();
        assert!(frames.next().is_none());
        out
    }

    fn hex_of(f: &Frame) -> String {
        let mut buf = BytesMut::new();
        f.encode(&mut buf).unwrap();
        hex::encode(buf)
    }

    #[test]
    fn names_repeated_within_a_record_decode_alike_and_bad_ones_still_fail() {
        let send = |to: &str, id| {
            Frame::Send(Message {
                peer: name(to),
                id,
                flags: 0,
                chunk: None,
                prev: None,
                payload: Bytes::from_static(b"x"),
            })
        };
        let frames = [
            send("B", 1),
            send("B", 2),
            Frame::Ack {
                peer: name("C"),
                id: 3,
            },
            Frame::Nack {
                peer: name("C"),
                id: 4,
                reason: NackReason::Overloaded,
            },
            send("B", 5),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf).unwrap();
        }
        let record = buf.clone().freeze();
        let got: Vec<Frame> = Frames::new(record).map(Result::unwrap).collect();
        assert_eq!(got, frames);
        // The same bytes with one more byte after the name are another name, and an
        // invalid one: the record fails there.
        let mut bad = BytesMut::new();
        send("B", 6).encode(&mut bad).unwrap();
        bad.put_slice(&[kind::ACK, 0, 11, 2, b'B', 0xff]);
        bad.put_u64(7);
        let mut it = Frames::new(bad.freeze());
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(ProtoError::InvalidName { .. }))
        ));
    }

    // Hex snapshots: a change here is a wire format change and must be deliberate.
    #[test]
    fn wire_snapshots() {
        let send = Frame::Send(Message {
            peer: name("B"),
            id: 7,
            flags: flags::TEXT,
            chunk: None,
            prev: None,
            payload: Bytes::from_static(b"hi"),
        });
        assert_eq!(
            hex_of(&send),
            "01000d0142000000000000000704".to_owned() + "6869"
        );
        let chunked = Frame::Deliver(Message {
            peer: name("A"),
            id: 1,
            flags: 0,
            chunk: Some(Chunk {
                offset: 2,
                total: 3,
            }),
            prev: None,
            payload: Bytes::from_static(b"z"),
        });
        assert_eq!(
            hex_of(&chunked),
            "02001c014100000000000000010800000000000000020000000000000003".to_owned() + "7a"
        );
        let sequenced = Frame::Send(Message {
            peer: name("B"),
            id: 9,
            flags: flags::ACK_REQUESTED,
            chunk: Some(Chunk {
                offset: 0,
                total: 1,
            }),
            prev: Some(4),
            payload: Bytes::from_static(b"q"),
        });
        assert_eq!(
            hex_of(&sequenced),
            "0f0024014200000000000000090a0000000000000004\
             00000000000000000000000000000001"
                .to_owned()
                + "71"
        );
        assert_eq!(
            hex_of(&Frame::Ack {
                peer: name("B"),
                id: 258
            }),
            "04000a01420000000000000102"
        );
        assert_eq!(
            hex_of(&Frame::Nack {
                peer: name("x"),
                id: 1,
                reason: NackReason::UnknownPeer
            }),
            "05000b0178000000000000000101"
        );
        assert_eq!(hex_of(&Frame::Ping(5)), "0b00080000000000000005");
        assert_eq!(hex_of(&Frame::Close), "0e0000");
        assert_eq!(
            hex_of(&Frame::error(ErrorCode::NameTaken, "no")),
            "0d0006000400026e6f"
        );
        let info = PeerInfo {
            name: name("n"),
            transport: Transport::Ws,
            cipher: Cipher::ChaCha20Poly1305,
            compression: Compression::Snappy,
            key: [0xaa; 32],
            addr: "a".into(),
            joined_ms: 9,
            direct: "10.0.0.7:7411".into(),
            incarnation: 5,
        };
        assert_eq!(
            hex_of(&Frame::PeerJoined(info)),
            format!(
                "080045016e020101{}016100000000000000 09 0d{} 0000000000000005",
                "aa".repeat(32),
                hex::encode("10.0.0.7:7411")
            )
            .replace(' ', "")
        );
        assert_eq!(
            hex_of(&Frame::Mark {
                peer: name("b"),
                token: 3
            }),
            "11000a0162 0000000000000003".replace(' ', "")
        );
    }

    #[test]
    fn several_frames_in_one_record() {
        let mut buf = BytesMut::new();
        Frame::Ping(1).encode(&mut buf).unwrap();
        Frame::ListPeers.encode(&mut buf).unwrap();
        Frame::Close.encode(&mut buf).unwrap();
        let got: Vec<_> = Frames::new(buf.freeze()).map(|f| f.unwrap()).collect();
        assert_eq!(got, vec![Frame::Ping(1), Frame::ListPeers, Frame::Close]);
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        let mut buf = BytesMut::new();
        Frame::Ack {
            peer: name("peer"),
            id: 3,
        }
        .encode(&mut buf)
        .unwrap();
        let full = buf.freeze();
        for cut in 1..full.len() {
            let mut it = Frames::new(full.slice(..cut));
            assert!(it.next().unwrap().is_err(), "cut at {cut} parsed");
            assert!(it.next().is_none(), "iteration continues after an error");
        }
        let err = Frames::new(Bytes::from_static(&[0x7f, 0, 0]))
            .next()
            .unwrap();
        assert_eq!(err, Err(ProtoError::UnknownFrame { kind: 0x7f }));
        // Trailing bytes inside a frame body are an error, not ignored.
        let err = Frames::new(Bytes::from_static(&[0x0e, 0, 1, 0]))
            .next()
            .unwrap();
        assert!(matches!(err, Err(ProtoError::Malformed { .. })));
    }

    #[test]
    fn chunk_past_total_is_rejected() {
        let f = Frame::Send(Message {
            peer: name("B"),
            id: 1,
            flags: 0,
            chunk: Some(Chunk {
                offset: 10,
                total: 11,
            }),
            prev: None,
            payload: Bytes::from_static(b"too long"),
        });
        let mut buf = BytesMut::new();
        f.encode(&mut buf).unwrap();
        assert!(Frames::new(buf.freeze()).next().unwrap().is_err());
    }

    #[test]
    fn oversized_frame_is_refused_before_writing() {
        let f = Frame::Broadcast(Broadcast {
            id: 1,
            flags: 0,
            chunk: None,
            payload: Bytes::from(vec![0u8; MAX_FRAME_BODY]),
        });
        let mut buf = BytesMut::new();
        assert!(matches!(
            f.encode(&mut buf),
            Err(ProtoError::FrameTooLarge { .. })
        ));
        assert!(buf.is_empty());
    }

    fn arb_name() -> impl Strategy<Value = Name> {
        "[a-zA-Z0-9_.-]{1,64}".prop_map(|s| Name::new(&s).unwrap())
    }

    fn arb_chunk() -> impl Strategy<Value = Option<Chunk>> {
        prop_oneof![
            Just(None),
            (0u64..1 << 40, 0u64..1 << 20).prop_map(|(o, extra)| Some(Chunk {
                offset: o,
                total: o + 4096 + extra
            })),
        ]
    }

    fn arb_payload() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..4096).prop_map(Bytes::from)
    }

    fn arb_flags() -> impl Strategy<Value = u8> {
        any::<u8>().prop_map(|f| f & !flags::CHUNKED)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            arb_name(),
            any::<u64>(),
            arb_flags(),
            arb_chunk(),
            proptest::option::of(any::<u64>()),
            arb_payload(),
        )
            .prop_map(|(peer, id, flags, chunk, prev, payload)| Message {
                peer,
                id,
                flags,
                chunk,
                prev,
                payload,
            })
    }

    fn arb_info() -> impl Strategy<Value = PeerInfo> {
        (
            arb_name(),
            any::<bool>(),
            any::<bool>(),
            any::<[u8; 32]>(),
            "[ -~]{0,60}",
            any::<u64>(),
            ("[ -~]{0,30}", any::<u64>()),
        )
            .prop_map(
                |(name, ws, enc, key, addr, joined_ms, (direct, incarnation))| PeerInfo {
                    name,
                    transport: if ws { Transport::Ws } else { Transport::Tcp },
                    cipher: if enc {
                        Cipher::ChaCha20Poly1305
                    } else {
                        Cipher::None
                    },
                    compression: if enc {
                        Compression::Snappy
                    } else {
                        Compression::None
                    },
                    key,
                    addr,
                    joined_ms,
                    direct,
                    incarnation,
                },
            )
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            arb_message().prop_map(Frame::Send),
            arb_message().prop_map(Frame::Deliver),
            (any::<u64>(), arb_flags(), arb_chunk(), arb_payload()).prop_map(
                |(id, flags, chunk, payload)| Frame::Broadcast(Broadcast {
                    id,
                    flags,
                    chunk,
                    payload
                })
            ),
            (arb_name(), any::<u64>()).prop_map(|(peer, id)| Frame::Ack { peer, id }),
            (arb_name(), any::<u64>()).prop_map(|(peer, token)| Frame::Mark { peer, token }),
            (arb_name(), any::<u64>(), any::<u8>()).prop_map(|(peer, id, r)| Frame::Nack {
                peer,
                id,
                reason: NackReason::from_u8(r)
            }),
            arb_name().prop_map(|name| Frame::Welcome { name }),
            (any::<bool>(), proptest::collection::vec(arb_info(), 0..20))
                .prop_map(|(last, peers)| Frame::PeerList { last, peers }),
            arb_info().prop_map(Frame::PeerJoined),
            arb_name().prop_map(|name| Frame::PeerLeft { name }),
            Just(Frame::ListPeers),
            any::<u64>().prop_map(Frame::Ping),
            any::<u64>().prop_map(Frame::Pong),
            (any::<u16>(), "\\PC{0,100}")
                .prop_map(|(c, t)| Frame::error(ErrorCode::from_u16(c), t)),
            Just(Frame::Close),
        ]
    }

    proptest! {
        #[test]
        fn every_frame_round_trips(f in arb_frame()) {
            prop_assert_eq!(roundtrip(&f), f);
        }

        #[test]
        fn frame_sequences_round_trip(fs in proptest::collection::vec(arb_frame(), 1..8)) {
            let mut buf = BytesMut::new();
            for f in &fs {
                f.encode(&mut buf).unwrap();
            }
            let got: Vec<Frame> = Frames::new(buf.freeze()).map(|f| f.unwrap()).collect();
            prop_assert_eq!(got, fs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            for f in Frames::new(Bytes::from(data)) {
                let _ = f;
            }
        }
    }
}
