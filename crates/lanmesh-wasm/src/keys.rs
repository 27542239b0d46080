//! Text forms of the keys a browser peer keeps: its static identity (stored in
//! `localStorage` so the peer keeps its key across page loads) and the mesh key (64 hex
//! digits, as `lanmesh keygen` prints it).

use lanmesh_proto::Identity;
use lanmesh_proto::handshake::key_from_hex;

use lanmesh_core::ClientError;

/// The `localStorage` entry holding the identity: hex of the secret then the public key.
pub const IDENTITY_STORAGE_KEY: &str = "lanmesh.identity";

/// The stored form of an identity: 128 hex digits, secret first.
pub fn identity_to_text(identity: &Identity) -> String {
    let mut text = hex::encode(identity.secret());
    text.push_str(&hex::encode(identity.public()));
    text
}

/// Reads an identity stored by [`identity_to_text`]; `None` when the text is not one.
pub fn identity_from_text(text: &str) -> Option<Identity> {
    let text = text.trim();
    let (secret, public) = (text.get(..64)?, text.get(64..)?);
    Identity::from_parts(&key_from_hex(secret)?, &key_from_hex(public)?).ok()
}

/// Parses a mesh key: 64 hex digits, surrounding white space ignored.
pub fn mesh_key_from_text(text: &str) -> Result<[u8; 32], ClientError> {
    key_from_hex(text).ok_or_else(|| ClientError::Invalid("meshKey must be 64 hex digits".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_text_round_trips() {
        let id = Identity::generate().unwrap();
        let text = identity_to_text(&id);
        assert_eq!(text.len(), 128);
        assert_eq!(identity_from_text(&text), Some(id));
        assert_eq!(identity_from_text("zz"), None);
        assert_eq!(identity_from_text(&text[..64]), None);
    }

    #[test]
    fn mesh_keys_are_64_hex_digits() {
        let key = mesh_key_from_text(&format!(" {} \n", "ab".repeat(32))).unwrap();
        assert_eq!(key, [0xab; 32]);
        assert!(mesh_key_from_text("abcd").is_err());
        assert!(mesh_key_from_text(&"g".repeat(64)).is_err());
    }
}
