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

pub use crate::frame_headers::{FrameHeaders, TooLarge};

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
    use crate::frame_headers::At;

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
