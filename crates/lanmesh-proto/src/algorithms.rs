//! The algorithms and transports that are named on the wire and in `peers --json`.

use crate::error::{ProtoError, Result};

/// Record protection negotiated in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cipher {
    /// No record encryption. Chosen only when both sides are explicitly configured for it.
    None,
    /// Noise transport messages with ChaCha20-Poly1305 (the default).
    ChaCha20Poly1305,
    /// Noise transport messages with AES-256-GCM (Noise's `AESGCM`): several times faster
    /// on CPUs with AES instructions. Native builds only; offered only when asked for.
    Aes256Gcm,
}

/// End-to-end payload compression negotiated in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Payloads are sent as they are.
    None,
    /// Snappy raw format, used per message only when it shrinks the payload.
    Snappy,
}

/// How a peer is connected to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Length-prefixed records on a TCP stream.
    Tcp,
    /// One record per binary WebSocket message.
    Ws,
}

macro_rules! wire_enum {
    ($ty:ident, $what:literal, { $($variant:ident = $code:literal, $text:literal;)* }) => {
        impl $ty {
            /// The byte that stands for this value on the wire.
            pub fn to_u8(self) -> u8 {
                match self { $(Self::$variant => $code,)* }
            }
            /// Parses the wire byte.
            pub fn from_u8(b: u8) -> Result<Self> {
                match b {
                    $($code => Ok(Self::$variant),)*
                    _ => Err(ProtoError::Malformed { what: $what }),
                }
            }
            /// The name used in JSON and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }
        }
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(Cipher, "cipher", {
    None = 0, "none";
    ChaCha20Poly1305 = 1, "chacha20poly1305";
    Aes256Gcm = 2, "aes256gcm";
});
wire_enum!(Compression, "compression", {
    None = 0, "none";
    Snappy = 1, "snappy";
});
wire_enum!(Transport, "transport", {
    Tcp = 1, "tcp";
    Ws = 2, "ws";
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_wire_bytes_and_names_are_stable() {
        let all = [
            (Cipher::None, 0, "none"),
            (Cipher::ChaCha20Poly1305, 1, "chacha20poly1305"),
            (Cipher::Aes256Gcm, 2, "aes256gcm"),
        ];
        for (cipher, byte, name) in all {
            assert_eq!(cipher.to_u8(), byte);
            assert_eq!(Cipher::from_u8(byte), Ok(cipher));
            assert_eq!(cipher.as_str(), name);
            assert_eq!(cipher.to_string(), name);
        }
        assert!(Cipher::from_u8(3).is_err());
    }
}
