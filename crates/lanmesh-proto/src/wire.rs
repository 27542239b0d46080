//! Bounds-checked reading of the primitive fields that frames and handshake payloads are
//! made of. Every read checks the remaining length first, so malformed input is an error,
//! never a panic or an oversized allocation.

use bytes::{Buf, BufMut, Bytes};

use crate::error::{ProtoError, Result};
use crate::name::Name;
use crate::prelude::*;

/// A cursor over a received buffer; slices it without copying.
pub(crate) struct Reader {
    buf: Bytes,
    what: &'static str,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, what: &'static str) -> Self {
        Self { buf, what }
    }

    fn need(&self, n: usize) -> Result<()> {
        if self.buf.len() < n {
            return Err(ProtoError::Malformed { what: self.what });
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    pub(crate) fn array32(&mut self) -> Result<[u8; 32]> {
        self.need(32)?;
        let mut out = [0u8; 32];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    /// A one-byte length followed by that many bytes.
    pub(crate) fn short_bytes(&mut self) -> Result<Bytes> {
        let n = usize::from(self.u8()?);
        self.bytes(n)
    }

    pub(crate) fn name(&mut self) -> Result<Name> {
        let b = self.short_bytes()?;
        Name::from_bytes(b)
    }

    /// A name, taken from `last` when it has the same bytes (the frames of one record
    /// mostly name one peer), so that it is checked and validated once; otherwise read
    /// and kept in `last`.
    pub(crate) fn name_like(&mut self, last: &mut Option<Name>) -> Result<Name> {
        let n = usize::from(self.u8()?);
        self.need(n)?;
        if let Some(name) = last
            .as_ref()
            .filter(|l| l.as_str().as_bytes() == &self.buf[..n])
        {
            self.buf.advance(n);
            return Ok(name.clone());
        }
        let name = Name::from_bytes(self.buf.split_to(n))?;
        *last = Some(name.clone());
        Ok(name)
    }

    pub(crate) fn short_string(&mut self) -> Result<String> {
        let b = self.short_bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed { what: self.what })
    }

    /// A two-byte length followed by UTF-8 text.
    pub(crate) fn long_string(&mut self) -> Result<String> {
        let n = usize::from(self.u16()?);
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed { what: self.what })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.buf)
    }

    /// Fails if anything is left: trailing bytes mean the sender and we disagree on the format.
    pub(crate) fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Malformed { what: self.what })
        }
    }
}

/// Writes a one-byte length and the bytes. Callers guarantee `b.len() <= 255` (names are
/// validated on construction; other short fields are truncated on construction).
pub(crate) fn put_short(buf: &mut impl BufMut, b: &[u8]) {
    let len = u8::try_from(b.len()).unwrap_or(u8::MAX);
    buf.put_u8(len);
    buf.put_slice(&b[..usize::from(len)]);
}

/// Writes a two-byte length and the bytes, cutting at 65 535 bytes.
pub(crate) fn put_long(buf: &mut impl BufMut, b: &[u8]) {
    let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
    buf.put_u16(len);
    buf.put_slice(&b[..usize::from(len)]);
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
