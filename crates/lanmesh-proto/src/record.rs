//! Record framing on byte streams.
//!
//! On TCP every record (and every handshake message) is preceded by its length as two
//! big-endian bytes; on WebSocket one binary message is one record and needs no prefix.
//! [`RecordDecoder`] splits a stream back into records, telling "need more bytes"
//! (`Ok(None)`) apart from "invalid" (`Err`), and checks the length before buffering.

use bytes::{Buf, BufMut, BytesMut};

use crate::error::{ProtoError, Result};
use crate::limits::MAX_RECORD;

/// Length of the prefix in front of each record on a stream.
pub const PREFIX_LEN: usize = 2;

/// Appends `record` to `out` with its length prefix. Records are at most 65 535 bytes by
/// construction (Noise messages), which is what two bytes can say.
pub fn put_prefixed(out: &mut BytesMut, record: &[u8]) -> Result<()> {
    let len = u16::try_from(record.len()).map_err(|_| ProtoError::RecordTooLarge {
        len: record.len(),
        max: MAX_RECORD,
    })?;
    out.reserve(PREFIX_LEN + record.len());
    out.put_u16(len);
    out.put_slice(record);
    Ok(())
}

/// A handshake message as the transport carries it: length-prefixed on streams, as it is
/// in one message otherwise. Handshake messages are small, so this cannot fail for one.
pub fn handshake_message(framing: crate::Framing, msg: &[u8]) -> Result<bytes::Bytes> {
    match framing {
        crate::Framing::LengthPrefixed => {
            let mut out = BytesMut::with_capacity(PREFIX_LEN + msg.len());
            put_prefixed(&mut out, msg)?;
            Ok(out.freeze())
        }
        crate::Framing::Message => Ok(bytes::Bytes::copy_from_slice(msg)),
    }
}

/// Splits a byte stream into records.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    max: usize,
}

impl RecordDecoder {
    /// A decoder that refuses records longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.min(MAX_RECORD),
        }
    }

    /// Changes the limit (the handshake uses a small one, the transport phase a large one).
    pub fn set_max(&mut self, max: usize) {
        self.max = max.min(MAX_RECORD);
    }

    /// Takes one whole record off the front of `buf`, if it is all there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>> {
        if buf.len() < PREFIX_LEN {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if len > self.max {
            return Err(ProtoError::RecordTooLarge { len, max: self.max });
        }
        if len == 0 {
            return Err(ProtoError::Malformed {
                what: "empty record",
            });
        }
        if buf.len() < PREFIX_LEN + len {
            buf.reserve(PREFIX_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(PREFIX_LEN);
        Ok(Some(buf.split_to(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records_and_waits_for_more() {
        let mut out = BytesMut::new();
        put_prefixed(&mut out, b"hello").unwrap();
        put_prefixed(&mut out, b"world!").unwrap();
        let mut dec = RecordDecoder::new(MAX_RECORD);
        let mut part = out.split_to(4);
        assert_eq!(dec.decode(&mut part).unwrap(), None);
        part.unsplit(out);
        assert_eq!(&dec.decode(&mut part).unwrap().unwrap()[..], b"hello");
        assert_eq!(&dec.decode(&mut part).unwrap().unwrap()[..], b"world!");
        assert_eq!(dec.decode(&mut part).unwrap(), None);
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        // The first two bytes of a 2 GiB big-endian u32 length.
        let mut buf = BytesMut::from(&[0x80, 0x00, 0x00, 0x00][..]);
        let mut dec = RecordDecoder::new(1024);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtoError::RecordTooLarge {
                len: 0x8000,
                max: 1024
            })
        );
    }

    #[test]
    fn empty_record_is_invalid() {
        let mut buf = BytesMut::from(&[0, 0][..]);
        assert!(RecordDecoder::new(MAX_RECORD).decode(&mut buf).is_err());
    }
}
