//! Peer and mesh names: short UTF-8 strings, cheap to clone and to slice out of a record.

use bytestring::ByteString;
use core::fmt;

use crate::error::{ProtoError, Result};

/// Hard upper bound on a name, whatever the configured limit (names travel with a one-byte
/// length).
pub const MAX_NAME_LEN: usize = 255;

/// A validated peer name: 1 to 255 bytes of UTF-8 with no whitespace or control
/// characters. Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(ByteString);

impl Name {
    /// Validates `s` as a name.
    pub fn new(s: &str) -> Result<Self> {
        validate(s)?;
        Ok(Self(ByteString::from(s)))
    }

    /// Validates bytes sliced out of a received buffer without copying them.
    pub(crate) fn from_bytes(b: bytes::Bytes) -> Result<Self> {
        let s = ByteString::try_from(b).map_err(|_| ProtoError::InvalidName {
            reason: "not UTF-8",
        })?;
        validate(&s)?;
        Ok(Self(s))
    }

    /// The same name in a buffer of its own. A name sliced out of a received record
    /// keeps that whole record's allocation alive; one kept for long (a map key) is
    /// detached first, which matters on a board with a few KiB of RAM.
    pub fn detached(&self) -> Self {
        Self(ByteString::from(self.as_str()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the name against a configured length limit.
    pub fn check_len(&self, max: usize) -> Result<()> {
        if self.0.len() > max {
            return Err(ProtoError::InvalidName {
                reason: "longer than the configured limit",
            });
        }
        Ok(())
    }
}

fn validate(s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(ProtoError::InvalidName { reason: "empty" });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(ProtoError::InvalidName {
            reason: "longer than 255 bytes",
        });
    }
    // Printable ASCII but space is always fine: the common case, checked byte by byte.
    if s.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Ok(());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ProtoError::InvalidName {
            reason: "contains whitespace or control characters",
        });
    }
    Ok(())
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl core::str::FromStr for Name {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl core::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["laptop", "web-1", "PC2", "capteur-salle", "é"] {
            assert_eq!(Name::new(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn the_ascii_shortcut_agrees_with_the_rule_for_every_ascii_character() {
        for b in 0u8..128 {
            let c = char::from(b);
            let name = format!("a{c}b");
            let by_rule = !(c.is_whitespace() || c.is_control());
            assert_eq!(Name::new(&name).is_ok(), by_rule, "byte {b:#04x}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert!(Name::new("").is_err());
        assert!(Name::new("a b").is_err());
        assert!(Name::new("a\u{7}").is_err());
        assert!(Name::new(&"x".repeat(256)).is_err());
        assert!(Name::from_bytes(bytes::Bytes::from_static(&[0xff, 0xfe])).is_err());
    }

    #[test]
    fn configured_limit_applies() {
        let n = Name::new(&"x".repeat(65)).unwrap();
        assert!(n.check_len(64).is_err());
        assert!(n.check_len(65).is_ok());
    }
}
