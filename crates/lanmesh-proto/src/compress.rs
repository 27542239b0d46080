//! End-to-end payload compression (Snappy raw format).
//!
//! The sending client compresses, the router forwards the compressed bytes untouched, and
//! the receiving client decompresses. A payload is compressed only when it is at least
//! [`COMPRESS_THRESHOLD`] bytes and actually shrinks; the `COMPRESSED` flag says which.
//! Before decompressing, the receiver checks the length the Snappy header declares against
//! its own limit: five header bytes can claim 4 GiB.

use crate::error::{ProtoError, Result};

/// Payloads shorter than this are never worth compressing.
pub const COMPRESS_THRESHOLD: usize = 128;

/// Compresses `data` if that helps; `None` means "send it as it is".
pub fn compress(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < COMPRESS_THRESHOLD {
        return None;
    }
    let out = snap::raw::Encoder::new().compress_vec(data).ok()?;
    (out.len() < data.len()).then_some(out)
}

/// Decompresses `data`, refusing before allocating if the declared length exceeds `max`.
pub fn decompress(data: &[u8], max: u64) -> Result<Vec<u8>> {
    let declared = snap::raw::decompress_len(data).map_err(|e| ProtoError::Decompress {
        reason: e.to_string(),
    })?;
    if declared as u64 > max {
        return Err(ProtoError::MessageTooLarge {
            len: declared as u64,
            max,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| ProtoError::Decompress {
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_and_incompressible_payloads_stay_raw() {
        assert_eq!(compress(b"short"), None);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect();
        assert_eq!(compress(&noise), None);
    }

    #[test]
    fn repetitive_payloads_shrink_and_round_trip() {
        let text = "temperature=21.5;".repeat(100);
        let packed = compress(text.as_bytes()).unwrap();
        assert!(packed.len() < text.len() / 4);
        assert_eq!(decompress(&packed, 1 << 20).unwrap(), text.as_bytes());
    }

    #[test]
    fn declared_length_is_checked_before_allocating() {
        // A varint header declaring 4 GiB - 1, followed by nothing.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            decompress(&bomb, 64 << 20),
            Err(ProtoError::MessageTooLarge {
                len: u64::from(u32::MAX),
                max: 64 << 20
            })
        );
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let packed = compress("abcabcabc".repeat(50).as_bytes()).unwrap();
        let mut bad = packed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        bad.truncate(bad.len() - 3);
        assert!(decompress(&bad, 1 << 20).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..10_000)) {
            match compress(&data) {
                Some(c) => prop_assert_eq!(decompress(&c, 1 << 20).unwrap(), data),
                None => prop_assert!(
                    data.len() < COMPRESS_THRESHOLD
                        || snap::raw::Encoder::new().compress_vec(&data).unwrap().len() >= data.len()
                ),
            }
        }
    }
}
