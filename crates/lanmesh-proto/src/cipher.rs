//! Record protection after the handshake: Noise's transport `CipherState`, one per direction.
//!
//! snow's `TransportState` does the same job, but it keys a fresh AEAD for every message
//! and needs separate input and output buffers. [`RecordCipher`] keys each direction once,
//! from the two split keys of the finished handshake, and seals and opens records in place.
//! What goes on the wire is exactly what snow would send (Noise spec §5.1, §12):
//!
//! * the initiator sends with the first split key, the responder with the second;
//! * each direction counts its records from 0 in a 64-bit nonce `n`;
//! * ChaCha20-Poly1305 (`ChaChaPoly`) takes the nonce as 32 zero bits then `n`
//!   little-endian; AES-256-GCM (`AESGCM`) as 32 zero bits then `n` big-endian;
//! * the associated data is empty and the 16-byte tag follows the ciphertext;
//! * `n = 2^64 - 1` is reserved and never used: the connection must end before it.
//!
//! A record that fails to open leaves the counter where it was, as in the spec; the
//! connection closes on that error anyway.
//!
//! Native builds use `ring` for both AEADs. The browser build (wasm32) and builds without
//! the `std` feature (boards) use RustCrypto's `chacha20poly1305`, the copy snow already
//! builds for the handshake, and offer ChaCha20-Poly1305 only.

use crate::algorithms::Cipher;
use crate::error::{ProtoError, Result};
use crate::limits::TAG_LEN;

/// Length of a Noise cipher key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Whether this build can protect records with `cipher`. `Cipher::None` needs nothing.
pub fn is_supported(cipher: Cipher) -> bool {
    match cipher {
        Cipher::None | Cipher::ChaCha20Poly1305 => true,
        Cipher::Aes256Gcm => cfg!(all(feature = "std", not(target_arch = "wasm32"))),
    }
}

/// The two directions of an encrypted connection.
pub struct RecordCipher {
    cipher: Cipher,
    send: CipherState,
    recv: CipherState,
}

impl core::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordCipher")
            .field("cipher", &self.cipher)
            .field("sent", &self.send.n)
            .field("received", &self.recv.n)
            .finish_non_exhaustive()
    }
}

impl RecordCipher {
    /// Keys both directions from the handshake's split keys (`first` protects what the
    /// initiator sends, `second` what the responder sends).
    pub fn new(
        cipher: Cipher,
        initiator: bool,
        first: &[u8; KEY_LEN],
        second: &[u8; KEY_LEN],
    ) -> Result<Self> {
        let (send, recv) = if initiator {
            (first, second)
        } else {
            (second, first)
        };
        Ok(Self {
            cipher,
            send: CipherState::new(cipher, send)?,
            recv: CipherState::new(cipher, recv)?,
        })
    }

    /// The AEAD in use.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Encrypts `in_out` in place as the next outgoing record and returns the tag to
    /// append after it.
    pub fn seal_in_place(&mut self, in_out: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        self.send.seal(in_out)
    }

    /// Decrypts the next incoming record (ciphertext then tag) in place and returns the
    /// length of the plaintext, which now starts `in_out`. A tampered, truncated,
    /// reordered or replayed record fails.
    pub fn open_in_place(&mut self, in_out: &mut [u8]) -> Result<usize> {
        self.recv.open(in_out)
    }

    /// Records sealed so far: the nonce of the next one.
    pub fn sent(&self) -> u64 {
        self.send.n
    }

    /// Records opened so far: the nonce the next one must carry.
    pub fn received(&self) -> u64 {
        self.recv.n
    }

    #[cfg(test)]
    fn set_counters(&mut self, sent: u64, received: u64) {
        self.send.n = sent;
        self.recv.n = received;
    }
}

/// One direction: a keyed AEAD and its nonce counter.
struct CipherState {
    key: backend::AeadKey,
    big_endian: bool,
    n: u64,
}

impl CipherState {
    fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Result<Self> {
        Ok(Self {
            key: backend::AeadKey::new(cipher, key)?,
            big_endian: cipher == Cipher::Aes256Gcm,
            n: 0,
        })
    }

    /// The counter left for use, refusing the reserved last value.
    fn counter(&self) -> Result<u64> {
        if self.n == u64::MAX {
            return Err(ProtoError::NonceExhausted);
        }
        Ok(self.n)
    }

    fn seal(&mut self, in_out: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        let nonce = nonce(self.big_endian, self.counter()?);
        let tag = self.key.seal(nonce, in_out)?;
        self.n += 1;
        Ok(tag)
    }

    fn open(&mut self, in_out: &mut [u8]) -> Result<usize> {
        let nonce = nonce(self.big_endian, self.counter()?);
        let len = self.key.open(nonce, in_out)?;
        self.n += 1;
        Ok(len)
    }
}

/// Noise's nonce encoding: 32 zero bits, then the counter (big-endian for AES-GCM,
/// little-endian for ChaCha20-Poly1305).
fn nonce(big_endian: bool, n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    let counter = if big_endian {
        n.to_be_bytes()
    } else {
        n.to_le_bytes()
    };
    nonce[4..].copy_from_slice(&counter);
    nonce
}

fn decrypt_error() -> ProtoError {
    ProtoError::Decrypt { during: "record" }
}

#[cfg(all(feature = "std", not(target_arch = "wasm32")))]
use ring_backend as backend;
#[cfg(not(all(feature = "std", not(target_arch = "wasm32"))))]
use rustcrypto_backend as backend;

/// ring: hardware AES and vectorised ChaCha20-Poly1305 on every native target.
#[cfg(all(feature = "std", not(target_arch = "wasm32")))]
mod ring_backend {
    use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    use super::{KEY_LEN, NONCE_LEN, decrypt_error};
    use crate::algorithms::Cipher;
    use crate::error::{ProtoError, Result};
    use crate::limits::TAG_LEN;

    pub(super) struct AeadKey(LessSafeKey);

    impl AeadKey {
        pub(super) fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Result<Self> {
            let algorithm = match cipher {
                Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
                Cipher::Aes256Gcm => &AES_256_GCM,
                Cipher::None => return Err(ProtoError::Noise("no key for plaintext".into())),
            };
            let key = UnboundKey::new(algorithm, key)
                .map_err(|_| ProtoError::Noise("ring refused a 32-byte key".into()))?;
            Ok(Self(LessSafeKey::new(key)))
        }

        pub(super) fn seal(
            &self,
            nonce: [u8; NONCE_LEN],
            in_out: &mut [u8],
        ) -> Result<[u8; TAG_LEN]> {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    in_out,
                )
                .map_err(|_| ProtoError::Noise("record too long to seal".into()))?;
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            Ok(out)
        }

        pub(super) fn open(&self, nonce: [u8; NONCE_LEN], in_out: &mut [u8]) -> Result<usize> {
            self.0
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), in_out)
                .map(|plain| plain.len())
                .map_err(|_| decrypt_error())
        }
    }
}

/// RustCrypto's ChaCha20-Poly1305, for the browser (ring does not build for wasm32 without
/// a C toolchain for it) and for boards (pure Rust, no std). Native test builds compile it
/// too, to check it against ring.
#[cfg(any(not(all(feature = "std", not(target_arch = "wasm32"))), test))]
mod rustcrypto_backend {
    #[cfg(not(feature = "std"))]
    use crate::prelude::*;
    use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, KeyInit};

    use super::{KEY_LEN, NONCE_LEN, decrypt_error};
    use crate::algorithms::Cipher;
    use crate::error::{ProtoError, Result};
    use crate::limits::TAG_LEN;

    pub(super) struct AeadKey(ChaCha20Poly1305);

    impl AeadKey {
        pub(super) fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Result<Self> {
            match cipher {
                Cipher::ChaCha20Poly1305 => Ok(Self(ChaCha20Poly1305::new(&(*key).into()))),
                other => Err(ProtoError::Noise(format!(
                    "{other} is not available in this build"
                ))),
            }
        }

        pub(super) fn seal(
            &self,
            nonce: [u8; NONCE_LEN],
            in_out: &mut [u8],
        ) -> Result<[u8; TAG_LEN]> {
            let tag = self
                .0
                .encrypt_in_place_detached(&nonce.into(), &[], in_out)
                .map_err(|_| ProtoError::Noise("record too long to seal".into()))?;
            Ok(tag.into())
        }

        pub(super) fn open(&self, nonce: [u8; NONCE_LEN], in_out: &mut [u8]) -> Result<usize> {
            let Some(len) = in_out.len().checked_sub(TAG_LEN) else {
                return Err(decrypt_error());
            };
            let (data, tag) = in_out.split_at_mut(len);
            let tag: [u8; TAG_LEN] = (*tag).try_into().map_err(|_| decrypt_error())?;
            self.0
                .decrypt_in_place_detached(&nonce.into(), &[], data, &tag.into())
                .map_err(|_| decrypt_error())?;
            Ok(len)
        }
    }
}

// The tests compare against ring and snow's own transport, so they run natively.
#[cfg(test)]
#[cfg(all(feature = "std", not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

    /// A finished snow XX handshake: (initiator, responder).
    fn handshake() -> (snow::HandshakeState, snow::HandshakeState) {
        let params: snow::params::NoiseParams = PATTERN.parse().unwrap();
        let ik = snow::Builder::new(params.clone())
            .generate_keypair()
            .unwrap();
        let rk = snow::Builder::new(params.clone())
            .generate_keypair()
            .unwrap();
        let mut i = snow::Builder::new(params.clone())
            .local_private_key(&ik.private)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(params)
            .local_private_key(&rk.private)
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut msg, mut out) = ([0u8; 1024], [0u8; 1024]);
        for step in 0..3 {
            let (from, to) = if step % 2 == 0 {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let n = from.write_message(&[], &mut msg).unwrap();
            to.read_message(&msg[..n], &mut out).unwrap();
        }
        assert!(i.is_handshake_finished() && r.is_handshake_finished());
        (i, r)
    }

    /// Record ciphers for both sides, plus snow's transport states from the same handshake.
    fn both(
        cipher: Cipher,
    ) -> (
        RecordCipher,
        RecordCipher,
        snow::TransportState,
        snow::TransportState,
    ) {
        let (mut i, mut r) = handshake();
        let (k1, k2) = i.dangerously_get_raw_split();
        assert_eq!((k1, k2), r.dangerously_get_raw_split());
        let ours_i = RecordCipher::new(cipher, true, &k1, &k2).unwrap();
        let ours_r = RecordCipher::new(cipher, false, &k1, &k2).unwrap();
        (
            ours_i,
            ours_r,
            i.into_transport_mode().unwrap(),
            r.into_transport_mode().unwrap(),
        )
    }

    fn seal(c: &mut RecordCipher, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        let tag = c.seal_in_place(&mut buf).unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    fn open(c: &mut RecordCipher, record: &[u8]) -> Result<Vec<u8>> {
        let mut buf = record.to_vec();
        let n = c.open_in_place(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn snow_seal(t: &mut snow::TransportState, plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; plain.len() + TAG_LEN];
        let n = t.write_message(plain, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn snow_open(t: &mut snow::TransportState, record: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; record.len()];
        let n = t.read_message(record, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn payloads() -> Vec<Vec<u8>> {
        vec![
            b"hello".to_vec(),
            Vec::new(),
            (0..=255u8).cycle().take(65_535 - TAG_LEN).collect(),
            b"after the big one".to_vec(),
        ]
    }

    /// The default wire format is unchanged: snow opens what we seal, byte for byte the
    /// same records as snow's own, and we open what snow seals, both directions.
    #[test]
    fn chacha_records_are_snow_transport_messages() {
        let (mut our_i, mut our_r, mut snow_i, mut snow_r) = both(Cipher::ChaCha20Poly1305);
        for p in payloads() {
            // initiator -> responder: ours seals, snow opens.
            let rec = seal(&mut our_i, &p);
            assert_eq!(snow_open(&mut snow_r, &rec), p);
            // responder -> initiator: snow seals, ours opens.
            let rec = snow_seal(&mut snow_r, &p);
            assert_eq!(open(&mut our_i, &rec).unwrap(), p);
            // responder -> initiator: ours seals, snow opens.
            let rec = seal(&mut our_r, &p);
            assert_eq!(snow_open(&mut snow_i, &rec), p);
            // initiator -> responder: snow seals, ours opens.
            let rec = snow_seal(&mut snow_i, &p);
            assert_eq!(open(&mut our_r, &rec).unwrap(), p);
        }
        assert_eq!((our_i.sent(), our_i.received()), (4, 4));
        assert_eq!((our_r.sent(), our_r.received()), (4, 4));
    }

    #[test]
    fn same_bytes_as_snow_for_the_same_counter() {
        let (mut our_i, _, mut snow_i, _) = both(Cipher::ChaCha20Poly1305);
        for p in payloads() {
            assert_eq!(seal(&mut our_i, &p), snow_seal(&mut snow_i, &p));
        }
    }

    #[test]
    fn ring_and_rustcrypto_agree() {
        let key = [7u8; KEY_LEN];
        let ring = ring_backend::AeadKey::new(Cipher::ChaCha20Poly1305, &key).unwrap();
        let rc = rustcrypto_backend::AeadKey::new(Cipher::ChaCha20Poly1305, &key).unwrap();
        for n in [0, 1, 255, 256, 1 << 40, u64::MAX - 1] {
            let nonce = nonce(false, n);
            let mut a = b"the same record on both".to_vec();
            let mut b = a.clone();
            let ta = ring.seal(nonce, &mut a).unwrap();
            let tb = rc.seal(nonce, &mut b).unwrap();
            assert_eq!((&a, ta), (&b, tb));
            a.extend_from_slice(&ta);
            assert_eq!(rc.open(nonce, &mut a).unwrap(), 23);
            assert_eq!(&a[..23], b"the same record on both");
        }
        assert!(rustcrypto_backend::AeadKey::new(Cipher::Aes256Gcm, &key).is_err());
    }

    #[test]
    fn aes_round_trip_both_ways() {
        let (mut i, mut r, _, _) = both(Cipher::Aes256Gcm);
        for p in payloads() {
            let rec = seal(&mut i, &p);
            assert_eq!(rec.len(), p.len() + TAG_LEN);
            assert_eq!(open(&mut r, &rec).unwrap(), p);
            let rec = seal(&mut r, &p);
            assert_eq!(open(&mut i, &rec).unwrap(), p);
        }
        assert_eq!((i.sent(), r.received()), (4, 4));
    }

    /// AESGCM takes its counter big-endian: record 1 is sealed with nonce 00..01.
    #[test]
    fn aes_nonce_is_big_endian() {
        use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let (k1, k2) = ([1u8; KEY_LEN], [2u8; KEY_LEN]);
        let mut ours = RecordCipher::new(Cipher::Aes256Gcm, true, &k1, &k2).unwrap();
        let _ = seal(&mut ours, b"record 0");
        let rec = seal(&mut ours, b"record 1");
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k1).unwrap());
        let mut nonce = [0u8; NONCE_LEN];
        nonce[NONCE_LEN - 1] = 1;
        let mut buf = rec.clone();
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .unwrap();
        assert_eq!(plain, b"record 1");
    }

    #[test]
    fn tampered_truncated_replayed_and_reordered_records_fail() {
        for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
            let (mut i, mut r, _, _) = both(cipher);
            let first = seal(&mut i, b"first");
            let second = seal(&mut i, b"second");
            for bad in [
                {
                    let mut t = first.clone();
                    t[0] ^= 1;
                    t
                },
                {
                    let mut t = first.clone();
                    *t.last_mut().unwrap() ^= 0x80;
                    t
                },
                first[..first.len() - 1].to_vec(),
                first[..TAG_LEN - 1].to_vec(),
                Vec::new(),
                second.clone(),
            ] {
                assert_eq!(open(&mut r, &bad), Err(decrypt_error()), "{cipher}");
                // A failure does not move the counter.
                assert_eq!(r.received(), 0);
            }
            assert_eq!(open(&mut r, &first).unwrap(), b"first");
            assert_eq!(open(&mut r, &first), Err(decrypt_error()), "replay");
            assert_eq!(open(&mut r, &second).unwrap(), b"second");
        }
    }

    #[test]
    fn the_last_counter_is_refused() {
        let (mut i, mut r, _, _) = both(Cipher::ChaCha20Poly1305);
        i.set_counters(u64::MAX - 1, 0);
        r.set_counters(0, u64::MAX - 1);
        let rec = seal(&mut i, b"last one");
        assert_eq!(open(&mut r, &rec).unwrap(), b"last one");
        let mut buf = b"one too many".to_vec();
        assert_eq!(i.seal_in_place(&mut buf), Err(ProtoError::NonceExhausted));
        assert_eq!(open(&mut r, &rec), Err(ProtoError::NonceExhausted));
    }

    #[test]
    fn plaintext_has_no_key() {
        assert!(RecordCipher::new(Cipher::None, true, &[0; 32], &[0; 32]).is_err());
        assert!(is_supported(Cipher::Aes256Gcm));
    }
}
