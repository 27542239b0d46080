//! Application messages ⇄ frames: compression and chunking on the way out, reassembly and
//! decompression on the way in. Runs in the clients; the router forwards frames as they
//! are, except that it cuts them smaller ([`rechunk`]) for a peer that declared a small
//! record limit.

// `alloc` has no HashMap: without std a BTreeMap holds the (at most
// `max_partial_messages`) partial messages. Nothing depends on their order.
#[cfg(not(feature = "std"))]
use alloc::collections::BTreeMap as PartialMap;
#[cfg(feature = "std")]
use std::collections::HashMap as PartialMap;

use bytes::{Bytes, BytesMut};

use crate::algorithms::Compression;
use crate::compress::{COMPRESS_THRESHOLD, CompressionProbe, compress, decompress};
use crate::error::{ProtoError, Result};
use crate::frame::{Broadcast, Chunk, Frame, Message, flags};
use crate::limits::{CHUNK_SIZE, Limits};
use crate::name::Name;
use crate::prelude::*;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One named peer.
    Peer(Name),
    /// Every other peer in the mesh.
    Everyone,
}

/// Like [`message_frames`], trying compression only when `probe` says it may pay, and
/// telling it how the try went.
pub fn probed_message_frames(
    dest: &Destination,
    id: u64,
    flag_bits: u8,
    data: Bytes,
    negotiated: Compression,
    probe: &CompressionProbe,
) -> Vec<Frame> {
    let len = data.len();
    let mut compression = probe.choose(negotiated, len);
    if compression == Compression::Snappy && len >= SAMPLE_FROM && !sample_shrinks(&data) {
        // A large payload whose sample does not shrink is sent as it is: one pass of
        // Snappy over a few KiB instead of over the whole payload.
        probe.note(false);
        compression = Compression::None;
    }
    let frames = message_frames(dest, id, flag_bits, data, compression);
    if compression == Compression::Snappy && len >= COMPRESS_THRESHOLD {
        let shrank = match frames.first() {
            Some(Frame::Send(m)) => m.flags & flags::COMPRESSED != 0,
            Some(Frame::Broadcast(b)) => b.flags & flags::COMPRESSED != 0,
            _ => false,
        };
        probe.note(shrank);
    }
    frames
}

/// Payloads from this size on are compressed only when a sample of them shrinks.
pub const SAMPLE_FROM: usize = 64 * 1024;
/// Bytes of the sample (from the middle of the payload, past any header).
const SAMPLE_LEN: usize = 4 * 1024;

/// Whether a sample from the middle of `data` shrinks by at least an eighth under Snappy.
fn sample_shrinks(data: &[u8]) -> bool {
    let start = (data.len() / 2).saturating_sub(SAMPLE_LEN / 2);
    let sample = &data[start..(start + SAMPLE_LEN).min(data.len())];
    compress(sample).is_some_and(|packed| packed.len() <= sample.len() - sample.len() / 8)
}

/// Turns application data into the frames that carry it: compressed when the connection
/// negotiated Snappy and it helps, split into chunks when it is larger than one record.
pub fn message_frames(
    dest: &Destination,
    id: u64,
    mut flag_bits: u8,
    data: Bytes,
    compression: Compression,
) -> Vec<Frame> {
    let body = match compression {
        Compression::Snappy => match compress(&data) {
            Some(packed) => {
                flag_bits |= flags::COMPRESSED;
                Bytes::from(packed)
            }
            None => data,
        },
        _ => data,
    };
    flag_bits &= !flags::CHUNKED;
    let total = body.len() as u64;
    let frame = |chunk: Option<Chunk>, payload: Bytes| match dest {
        Destination::Peer(peer) => Frame::Send(Message {
            peer: peer.clone(),
            id,
            flags: flag_bits,
            chunk,
            prev: None,
            payload,
        }),
        Destination::Everyone => Frame::Broadcast(Broadcast {
            id,
            flags: flag_bits,
            chunk,
            payload,
        }),
    };
    if body.len() <= CHUNK_SIZE {
        return vec![frame(None, body)];
    }
    (0..body.len())
        .step_by(CHUNK_SIZE)
        .map(|start| {
            let end = (start + CHUNK_SIZE).min(body.len());
            frame(
                Some(Chunk {
                    offset: start as u64,
                    total,
                }),
                body.slice(start..end),
            )
        })
        .collect()
}

/// Cuts a `Deliver` message (whole, or one chunk of a larger one) into chunks whose
/// `Deliver` frames are at most `max_frame_len` bytes. The bytes are not touched (they
/// stay compressed), so the recipient reassembles the pieces like any chunked message.
pub fn rechunk(m: Message, max_frame_len: usize) -> Vec<Message> {
    if Frame::Deliver(m.clone()).encoded_len() <= max_frame_len {
        return vec![m];
    }
    let (base, total) = match m.chunk {
        Some(c) => (c.offset, c.total),
        None => (0, m.payload.len() as u64),
    };
    let header = Frame::Deliver(Message {
        payload: Bytes::new(),
        chunk: Some(Chunk {
            offset: total,
            total,
        }),
        ..m.clone()
    })
    .encoded_len();
    let piece = max_frame_len.saturating_sub(header).max(1);
    (0..m.payload.len())
        .step_by(piece)
        .map(|start| {
            let end = (start + piece).min(m.payload.len());
            Message {
                chunk: Some(Chunk {
                    offset: base + start as u64,
                    total,
                }),
                payload: m.payload.slice(start..end),
                ..m.clone()
            }
        })
        .collect()
}

/// A whole message, reassembled and decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    /// The sender.
    pub from: Name,
    /// The sender's serial number.
    pub id: u64,
    /// Flags of the message (`COMPRESSED` and `CHUNKED` cleared).
    pub flags: u8,
    /// Its place in the sender's acked stream, if it is part of one.
    pub prev: Option<u64>,
    /// The application data.
    pub data: Bytes,
}

#[derive(Debug)]
struct Partial {
    buf: BytesMut,
    total: u64,
    flags: u8,
    prev: Option<u64>,
}

/// The most a chunked message's buffer reserves before its data arrives (4 MiB).
pub const PREALLOCATE_MAX: usize = 4 << 20;

/// Reassembles chunked messages with a bounded number in flight and a bounded size.
#[derive(Debug)]
pub struct Reassembler {
    partial: PartialMap<(Name, u64), Partial>,
    limits: Limits,
}

impl Reassembler {
    /// A reassembler enforcing `limits.max_message` and `limits.max_partial_messages`.
    pub fn new(limits: Limits) -> Self {
        Self {
            partial: PartialMap::new(),
            limits,
        }
    }

    /// Bytes currently held for incomplete messages.
    pub fn buffered_bytes(&self) -> usize {
        self.partial.values().map(|p| p.buf.len()).sum()
    }

    /// Takes one `Deliver` frame's message; returns the whole message once it is complete.
    ///
    /// After a reconnect a message can arrive again from its start (a resend) while part
    /// of an earlier copy is held, or its tail can arrive without its start (the start was
    /// lost with the old connection). The first restarts the message; the second is
    /// dropped — the sender resends what the recipient did not acknowledge.
    ///
    /// A router that is overloaded refuses single chunks (and tells their sender), so a
    /// message can arrive with a hole: chunks of a message whose first chunk never came,
    /// or a chunk past the end of what arrived so far. Such a message is dropped, not
    /// the connection. A chunk that goes backwards or changes the total is still invalid.
    pub fn push(&mut self, m: Message) -> Result<Option<Complete>> {
        let Some(chunk) = m.chunk else {
            return self
                .finish(m.peer, m.id, m.flags, m.prev, m.payload)
                .map(Some);
        };
        if chunk.total > self.limits.max_message {
            return Err(ProtoError::MessageTooLarge {
                len: chunk.total,
                max: self.limits.max_message,
            });
        }
        let key = (m.peer.clone(), m.id);
        if chunk.offset == 0 {
            self.partial.remove(&key);
        }
        if !self.partial.contains_key(&key) {
            if chunk.offset != 0 {
                // The rest of a message whose start was refused on the way.
                return Ok(None);
            }
            if self.partial.len() >= self.limits.max_partial_messages {
                // A sender's older message that never completed lost its tail on the
                // way (ids grow per sender): it gives its place to the new one.
                let oldest = self
                    .partial
                    .keys()
                    .filter(|(peer, id)| *peer == m.peer && *id < m.id)
                    .min_by_key(|(_, id)| *id)
                    .cloned();
                if let Some(old) = oldest {
                    self.partial.remove(&old);
                }
            }
            if self.partial.len() >= self.limits.max_partial_messages {
                return Err(ProtoError::TooManyPartial {
                    max: self.limits.max_partial_messages,
                });
            }
            // Room for the whole message when it is of an ordinary size, so a 1 MiB
            // message is not copied again at each doubling of its buffer. Beyond
            // [`PREALLOCATE_MAX`] it grows as data arrives: `total` is only a claim.
            let room =
                usize::try_from(chunk.total).map_or(PREALLOCATE_MAX, |t| t.min(PREALLOCATE_MAX));
            self.partial.insert(
                // Its own copy of the name: the key outlives this chunk's record.
                (key.0.detached(), key.1),
                Partial {
                    buf: BytesMut::with_capacity(room),
                    total: chunk.total,
                    flags: m.flags,
                    prev: m.prev,
                },
            );
        }
        let part = self
            .partial
            .get_mut(&key)
            .expect("inserted above when it was missing");
        let expected = part.buf.len() as u64;
        if chunk.offset > expected && chunk.total == part.total {
            // A chunk was refused on the way: the message cannot be completed.
            self.partial.remove(&key);
            return Ok(None);
        }
        if chunk.offset != expected || chunk.total != part.total {
            // That message is lost; the next one from this sender starts clean.
            self.partial.remove(&key);
            return Err(ProtoError::ChunkOrder {
                id: m.id,
                expected,
                offset: chunk.offset,
            });
        }
        part.buf.extend_from_slice(&m.payload);
        if (part.buf.len() as u64) < part.total {
            return Ok(None);
        }
        let part = self
            .partial
            .remove(&key)
            .expect("present: just appended to it");
        self.finish(m.peer, m.id, part.flags, part.prev, part.buf.freeze())
            .map(Some)
    }

    fn finish(
        &self,
        from: Name,
        id: u64,
        flag_bits: u8,
        prev: Option<u64>,
        payload: Bytes,
    ) -> Result<Complete> {
        let data = if flag_bits & flags::COMPRESSED != 0 {
            Bytes::from(decompress(&payload, self.limits.max_message)?)
        } else {
            if payload.len() as u64 > self.limits.max_message {
                return Err(ProtoError::MessageTooLarge {
                    len: payload.len() as u64,
                    max: self.limits.max_message,
                });
            }
            payload
        };
        Ok(Complete {
            from,
            id,
            flags: flag_bits & !(flags::COMPRESSED | flags::CHUNKED),
            prev,
            data,
        })
    }

    /// Drops partial messages from a peer that left.
    pub fn forget(&mut self, peer: &Name) {
        self.partial.retain(|(p, _), _| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(f: Frame, from: &str) -> Message {
        match f {
            Frame::Send(mut m) => {
                m.peer = Name::new(from).unwrap();
                m
            }
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn rechunked_pieces_fit_and_reassemble_to_the_same_message() {
        let data: Vec<u8> = (0..150_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let frames = message_frames(
            &Destination::Peer(Name::new("B").unwrap()),
            9,
            flags::ACK_REQUESTED,
            Bytes::from(data.clone()),
            Compression::None,
        );
        let mut r = Reassembler::new(Limits::default());
        let mut done = None;
        for f in frames {
            let m = deliver(f, "A");
            for piece in rechunk(m, 4096 - 16) {
                assert!(Frame::Deliver(piece.clone()).encoded_len() <= 4096 - 16);
                if let Some(c) = r.push(piece).unwrap() {
                    done = Some(c);
                }
            }
        }
        let done = done.expect("complete");
        assert_eq!(done.id, 9);
        assert_eq!(&done.data[..], &data[..]);
        // A message that fits is left whole.
        let small = deliver(
            message_frames(
                &Destination::Peer(Name::new("B").unwrap()),
                1,
                0,
                Bytes::from_static(b"hi"),
                Compression::None,
            )
            .remove(0),
            "A",
        );
        assert_eq!(rechunk(small.clone(), 4096), vec![small]);
    }

    #[test]
    fn large_payloads_are_judged_by_a_sample() {
        let to = Destination::Peer(Name::new("B").unwrap());
        let probe = CompressionProbe::default();
        let compressed = |data: &Bytes| {
            let frames =
                probed_message_frames(&to, 1, 0, data.clone(), Compression::Snappy, &probe);
            let first = matches!(&frames[0], Frame::Send(m) if m.flags & flags::COMPRESSED != 0);
            (first, frames)
        };
        let text = Bytes::from("temperature=21.5;".repeat(8000));
        assert!(text.len() >= SAMPLE_FROM);
        let (packed, frames) = compressed(&text);
        assert!(
            packed,
            "a compressible sample: the whole payload is compressed"
        );
        assert!(frames.len() == 1, "and it shrank to one frame");
        let noise = Bytes::from(crate::compress::tests::noise(256 * 1024));
        for _ in 0..crate::compress::MISSES_BEFORE_SKIPPING {
            let (packed, frames) = compressed(&noise);
            assert!(!packed);
            let sent: usize = frames
                .iter()
                .map(|f| match f {
                    Frame::Send(m) => m.payload.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(sent, noise.len(), "sent as it is");
        }
        // Each sample that did not shrink counted as a miss: the probe now skips.
        assert_eq!(
            probe.choose(Compression::Snappy, 1024),
            Compression::None,
            "misses from samples count like full tries"
        );
    }

    #[test]
    fn a_sender_stops_compressing_what_does_not_shrink_for_a_while() {
        let to = Destination::Peer(Name::new("B").unwrap());
        let probe = CompressionProbe::default();
        let compressed = |data: &Bytes| {
            let frames =
                probed_message_frames(&to, 1, 0, data.clone(), Compression::Snappy, &probe);
            matches!(&frames[0], Frame::Send(m) if m.flags & flags::COMPRESSED != 0)
        };
        let text = Bytes::from("temperature=21.5;".repeat(100));
        let noise = Bytes::from(crate::compress::tests::noise(1024));
        assert!(compressed(&text));
        for _ in 0..crate::compress::MISSES_BEFORE_SKIPPING {
            assert!(!compressed(&noise));
        }
        assert!(!compressed(&text), "not even tried right after the misses");
        for _ in 1..crate::compress::SKIPPED {
            compressed(&text);
        }
        assert!(compressed(&text), "tried again after the pause");
    }

    #[test]
    fn large_message_is_chunked_and_reassembled() {
        let data: Bytes = (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let to = Destination::Peer(Name::new("B").unwrap());
        let frames = message_frames(&to, 9, flags::TEXT, data.clone(), Compression::None);
        assert_eq!(frames.len(), 4);
        let mut r = Reassembler::new(Limits::default());
        let n = frames.len();
        for (i, f) in frames.into_iter().enumerate() {
            let out = r.push(deliver(f, "A")).unwrap();
            if i + 1 < n {
                assert!(out.is_none());
            } else {
                let c = out.unwrap();
                assert_eq!((c.id, c.flags, c.data), (9, flags::TEXT, data.clone()));
            }
        }
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn compressible_message_travels_compressed() {
        let data = Bytes::from("ab".repeat(5000));
        let to = Destination::Peer(Name::new("B").unwrap());
        let frames = message_frames(&to, 1, 0, data.clone(), Compression::Snappy);
        let Frame::Send(m) = &frames[0] else { panic!() };
        assert!(m.flags & flags::COMPRESSED != 0 && m.payload.len() < 1000);
        let c = Reassembler::new(Limits::default())
            .push(deliver(frames[0].clone(), "A"))
            .unwrap()
            .unwrap();
        assert_eq!(c.data, data);
    }

    #[test]
    fn oversized_chunks_are_refused_and_headless_ones_dropped() {
        let limits = Limits {
            max_message: 100_000,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        let big = Message {
            peer: Name::new("A").unwrap(),
            id: 1,
            flags: 0,
            chunk: Some(Chunk {
                offset: 0,
                total: 1 << 32,
            }),
            prev: None,
            payload: Bytes::from_static(b"x"),
        };
        assert!(matches!(
            r.push(big),
            Err(ProtoError::MessageTooLarge { .. })
        ));
        let late = Message {
            peer: Name::new("A").unwrap(),
            id: 2,
            flags: 0,
            chunk: Some(Chunk {
                offset: 5,
                total: 10,
            }),
            prev: None,
            payload: Bytes::from_static(b"x"),
        };
        // A tail without its start (lost with an old connection) is dropped.
        assert_eq!(r.push(late.clone()), Ok(None));
        assert_eq!(r.buffered_bytes(), 0);
        let start = Message {
            chunk: Some(Chunk {
                offset: 0,
                total: 10,
            }),
            ..late.clone()
        };
        assert_eq!(r.push(start.clone()), Ok(None));
        let gap = Message {
            chunk: Some(Chunk {
                offset: 5,
                total: 10,
            }),
            ..late
        };
        // A hole (a chunk refused on the way) drops the message, not the connection.
        assert_eq!(r.push(gap), Ok(None));
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn a_resent_message_restarts_its_reassembly() {
        let data: Bytes = (0..150_000u32)
            .map(|i| (i % 7) as u8)
            .collect::<Vec<_>>()
            .into();
        let to = Destination::Peer(Name::new("B").unwrap());
        let frames = message_frames(&to, 3, 0, data.clone(), Compression::None);
        let mut r = Reassembler::new(Limits::default());
        // The first copy is cut after its first chunk; the resend starts over.
        assert_eq!(r.push(deliver(frames[0].clone(), "A")), Ok(None));
        let mut done = None;
        for f in frames {
            done = r.push(deliver(f, "A")).unwrap();
        }
        assert_eq!(done.map(|c| c.data), Some(data));
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn a_message_with_a_refused_chunk_is_dropped_and_the_next_one_arrives() {
        let data: Bytes = vec![5u8; 150_000].into();
        let to = Destination::Peer(Name::new("B").unwrap());
        let mut r = Reassembler::new(Limits::default());
        // Message 1 lost its first chunk, message 2 its second.
        let lost_head = message_frames(&to, 1, 0, data.clone(), Compression::None);
        let lost_middle = message_frames(&to, 2, 0, data.clone(), Compression::None);
        for f in lost_head.into_iter().skip(1) {
            assert_eq!(r.push(deliver(f, "A")).unwrap(), None);
        }
        for (i, f) in lost_middle.into_iter().enumerate() {
            if i != 1 {
                assert_eq!(r.push(deliver(f, "A")).unwrap(), None);
            }
        }
        assert_eq!(r.buffered_bytes(), 0);
        let mut done = None;
        for f in message_frames(&to, 3, 0, data.clone(), Compression::None) {
            done = r.push(deliver(f, "A")).unwrap();
        }
        assert_eq!(done.map(|c| (c.id, c.data)), Some((3, data)));
    }

    #[test]
    fn a_sender_whose_tails_were_refused_keeps_sending_large_messages() {
        let limits = Limits {
            max_partial_messages: 2,
            ..Limits::default()
        };
        let data: Bytes = vec![5u8; 150_000].into();
        let to = Destination::Peer(Name::new("B").unwrap());
        let mut r = Reassembler::new(limits);
        // Ten messages from A, each missing its last chunk, then a whole one.
        for id in 0..10 {
            let mut frames = message_frames(&to, id, 0, data.clone(), Compression::None);
            frames.pop();
            for f in frames {
                assert_eq!(r.push(deliver(f, "A")).unwrap(), None);
            }
        }
        let mut done = None;
        for f in message_frames(&to, 10, 0, data.clone(), Compression::None) {
            done = r.push(deliver(f, "A")).unwrap();
        }
        assert_eq!(done.map(|c| c.id), Some(10));
        assert!(r.buffered_bytes() <= 2 * 150_000);
    }

    #[test]
    fn a_chunk_going_backwards_is_invalid() {
        let data: Bytes = vec![5u8; 150_000].into();
        let to = Destination::Peer(Name::new("B").unwrap());
        let frames = message_frames(&to, 1, 0, data, Compression::None);
        let mut r = Reassembler::new(Limits::default());
        r.push(deliver(frames[0].clone(), "A")).unwrap();
        r.push(deliver(frames[1].clone(), "A")).unwrap();
        assert!(matches!(
            r.push(deliver(frames[1].clone(), "A")),
            Err(ProtoError::ChunkOrder { .. })
        ));
    }

    #[test]
    fn partial_messages_are_bounded() {
        let limits = Limits {
            max_partial_messages: 2,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        // Three senders (one sender's new message would replace its own older one).
        for id in 0..3 {
            let m = Message {
                peer: Name::new(["A", "B", "C"][id as usize]).unwrap(),
                id,
                flags: 0,
                chunk: Some(Chunk {
                    offset: 0,
                    total: 10,
                }),
                prev: None,
                payload: Bytes::from_static(b"x"),
            };
            let res = r.push(m);
            if id < 2 {
                assert_eq!(res, Ok(None));
            } else {
                assert_eq!(res, Err(ProtoError::TooManyPartial { max: 2 }));
            }
        }
        r.forget(&Name::new("A").unwrap());
        r.forget(&Name::new("B").unwrap());
        assert_eq!(r.buffered_bytes(), 0);
    }
}
