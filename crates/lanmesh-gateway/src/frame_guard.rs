//! Refuses a WebSocket frame at its header when it claims more than a record.
//!
//! actix-http's frame parser learns a frame's length from its header, but only reports a
//! frame over `max_frame_size` once the whole frame has arrived: until then its caller
//! (actix-ws's `MessageStream`) keeps buffering what the peer sends, so one header
//! claiming 500 MB makes the gateway hold 500 MB. [`FrameGuard`] sits between the HTTP
//! payload and actix-ws and reads only the frame headers as the bytes pass:
//!
//! 1. collect the 2-byte head, then the 2- or 8-byte extended length and the 4-byte mask
//!    key it announces (RFC 6455 §5.2), however the bytes are split into chunks;
//! 2. refuse the frame if its length is over the limit — before any of its payload is
//!    passed on, so nothing beyond the header is ever buffered;
//! 3. otherwise count the payload bytes through and expect the next header.
//!
//! The bytes themselves go on untouched: actix-ws still parses and unmasks them.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev;
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Collecting a header: `have` of its bytes so far.
    Header { have: usize },
    /// Inside a frame's payload: this many bytes to go.
    Payload { left: u64 },
    /// A frame was refused; everything after it is refused too.
    Refused,
}

/// A frame header claimed more than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The length the header claimed.
    pub len: u64,
    /// The limit.
    pub max: u64,
}

/// The sans-IO header scanner: feed it every byte of the client's side of the
/// connection, in order.
#[derive(Debug, Clone)]
pub struct FrameHeaders {
    max: u64,
    at: At,
    header: [u8; 14],
}

impl FrameHeaders {
    /// A scanner refusing frames whose payload is over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max: max as u64,
            at: At::Header { have: 0 },
            header: [0; 14],
        }
    }

    /// Header bytes a frame starting with `b0 b1` has in all.
    fn header_len(b1: u8) -> usize {
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// The payload length of the complete header in `self.header`.
    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// Scans the next bytes of the stream. An `Err` means a header in them claimed too
    /// much; the connection must end (and every later call fails the same way).
    pub fn scan(&mut self, mut bytes: &[u8]) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            match self.at {
                At::Refused => {
                    return Err(TooLarge {
                        len: self.payload_len(),
                        max: self.max,
                    });
                }
                At::Payload { left } => {
                    let take = left.min(bytes.len() as u64);
                    // `take` is at most `bytes.len()`, so it fits a usize.
                    bytes = &bytes[take as usize..];
                    self.at = if take == left {
                        At::Header { have: 0 }
                    } else {
                        At::Payload { left: left - take }
                    };
                }
                At::Header { mut have } => {
                    let need = if have < 2 {
                        2
                    } else {
                        Self::header_len(self.header[1])
                    };
                    let take = (need - have).min(bytes.len());
                    self.header[have..have + take].copy_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    have += take;
                    let total = if have < 2 {
                        2
                    } else {
                        Self::header_len(self.header[1])
                    };
                    if have < total {
                        self.at = At::Header { have };
                        continue;
                    }
                    let len = self.payload_len();
                    if len > self.max {
                        self.at = At::Refused;
                        return Err(TooLarge { len, max: self.max });
                    }
                    self.at = if len == 0 {
                        At::Header { have: 0 }
                    } else {
                        At::Payload { left: len }
                    };
                }
            }
        }
        Ok(())
    }
}

/// The HTTP payload of an upgraded connection, cut off at the first frame header that
/// claims more than the limit.
pub struct FrameGuard {
    inner: dev::Payload,
    headers: FrameHeaders,
    failed: bool,
}

impl FrameGuard {
    /// Guards `inner`, refusing frames over `max` payload bytes.
    pub fn new(inner: dev::Payload, max: usize) -> Self {
        Self {
            inner,
            headers: FrameHeaders::new(max),
            failed: false,
        }
    }
}

impl Stream for FrameGuard {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match this.headers.scan(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(TooLarge { len, max }) => {
                    this.failed = true;
                    tracing::debug!(len, max, "websocket frame refused at its header");
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u64, masked: bool) -> Vec<u8> {
        let mask = if masked { 0x80 } else { 0 };
        let mut h = vec![0x82];
        if len < 126 {
            h.push(mask | len as u8);
        } else if len <= u64::from(u16::MAX) {
            h.push(mask | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(mask | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        if masked {
            h.extend_from_slice(&[1, 2, 3, 4]);
        }
        h
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_split() {
        let mut stream = Vec::new();
        for len in [0u64, 5, 125, 126, 1000, 65_535, 70_000] {
            stream.extend(header(len, true));
            stream.extend(std::iter::repeat_n(0xaa, len as usize));
        }
        for split in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut s = FrameHeaders::new(70_000);
            for chunk in stream.chunks(split) {
                s.scan(chunk).unwrap();
            }
            assert!(matches!(s.at, At::Header { have: 0 }), "split {split}");
        }
    }

    #[test]
    fn a_header_over_the_limit_is_refused_before_its_payload() {
        for split in [1, 2, 5, 14] {
            let mut s = FrameHeaders::new(65_535 + 1024);
            let h = header(500 * 1024 * 1024, true);
            let mut result = Ok(());
            for chunk in h.chunks(split) {
                result = result.and(s.scan(chunk));
            }
            assert_eq!(
                result,
                Err(TooLarge {
                    len: 500 * 1024 * 1024,
                    max: 65_535 + 1024
                })
            );
            assert!(s.scan(&[0]).is_err(), "stays refused");
        }
        // The largest 64-bit length does not overflow anything.
        let mut s = FrameHeaders::new(1);
        assert!(s.scan(&header(u64::MAX, false)).is_err());
    }
}
