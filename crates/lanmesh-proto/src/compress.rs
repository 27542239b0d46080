//! End-to-end payload compression (Snappy raw format).
//!
//! The sending client compresses, the router forwards the compressed bytes untouched, and
//! the receiving client decompresses. A payload is compressed only when it is at least
//! [`COMPRESS_THRESHOLD`] bytes and actually shrinks; the `COMPRESSED` flag says which.
//! Before decompressing, the receiver checks the length the Snappy header declares against
//! its own limit: five header bytes can claim 4 GiB.
//!
//! Snappy (the `snap` crate) needs std. A build without the `std` feature never
//! compresses, offers and accepts compression `none` only, and refuses a compressed
//! payload with a clear [`ProtoError::Decompress`].

use core::sync::atomic::{AtomicU32, Ordering};

use crate::algorithms::Compression;
use crate::error::{ProtoError, Result};
use crate::prelude::*;

/// Payloads shorter than this are never worth compressing.
pub const COMPRESS_THRESHOLD: usize = 128;

/// Whether this build can compress and decompress with `compression`.
pub fn is_supported(compression: Compression) -> bool {
    match compression {
        Compression::None => true,
        Compression::Snappy => cfg!(feature = "std"),
    }
}

/// Compresses `data` if that helps; `None` means "send it as it is".
#[cfg(feature = "std")]
pub fn compress(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < COMPRESS_THRESHOLD {
        return None;
    }
    let out = snap::raw::Encoder::new().compress_vec(data).ok()?;
    (out.len() < data.len()).then_some(out)
}

/// Without Snappy nothing is compressed: `None`, "send it as it is".
#[cfg(not(feature = "std"))]
pub fn compress(_data: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Payloads in a row that did not shrink before [`CompressionProbe`] stops trying.
pub const MISSES_BEFORE_SKIPPING: u32 = 4;
/// Payloads then sent as they are before compression is tried again.
pub const SKIPPED: u32 = 64;

/// Whether a sender's next payload is worth a Snappy pass.
///
/// Data that does not compress (media, archives, ciphertext, noise) usually keeps not
/// compressing, and trying costs a pass over every byte: for 1 KiB payloads, more than
/// encrypting them. After [`MISSES_BEFORE_SKIPPING`] payloads in a row that did not
/// shrink, the next [`SKIPPED`] are sent as they are, then compression is tried again;
/// one that shrinks starts the count over. A stream that turns compressible is
/// compressed again within [`SKIPPED`] payloads.
///
/// Shared by a sender's handles: the counters are plain atomics, and a race between
/// threads only moves the next try by a payload or two.
#[derive(Debug, Default)]
pub struct CompressionProbe {
    misses: AtomicU32,
    skip: AtomicU32,
}

impl CompressionProbe {
    /// The compression to use for a payload of `len` bytes on a connection that
    /// negotiated `negotiated`.
    pub fn choose(&self, negotiated: Compression, len: usize) -> Compression {
        if negotiated != Compression::Snappy || len < COMPRESS_THRESHOLD {
            return negotiated;
        }
        let skip = self.skip.load(Ordering::Relaxed);
        if skip > 0 {
            self.skip.store(skip - 1, Ordering::Relaxed);
            return Compression::None;
        }
        Compression::Snappy
    }

    /// What came of a payload [`choose`](Self::choose) said to compress.
    pub fn note(&self, shrank: bool) {
        if shrank {
            self.misses.store(0, Ordering::Relaxed);
            return;
        }
        let misses = self.misses.load(Ordering::Relaxed) + 1;
        if misses >= MISSES_BEFORE_SKIPPING {
            self.misses.store(0, Ordering::Relaxed);
            self.skip.store(SKIPPED, Ordering::Relaxed);
        } else {
            self.misses.store(misses, Ordering::Relaxed);
        }
    }
}

/// Decompresses `data`, refusing before allocating if the declared length exceeds `max`.
#[cfg(feature = "std")]
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

/// Without Snappy a compressed payload cannot be read: a clear error.
#[cfg(not(feature = "std"))]
pub fn decompress(_data: &[u8], _max: u64) -> Result<Vec<u8>> {
    Err(ProtoError::Decompress {
        reason: "snappy is not available in this build (no std)".to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pseudo-random bytes (xorshift): what Snappy cannot shrink.
    pub(crate) fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect()
    }

    #[test]
    fn small_and_incompressible_payloads_stay_raw() {
        assert_eq!(compress(b"short"), None);
        assert_eq!(compress(&noise(4096)), None);
    }

    #[test]
    fn a_probe_stops_trying_after_misses_and_tries_again_later() {
        let probe = CompressionProbe::default();
        let snappy = |p: &CompressionProbe| p.choose(Compression::Snappy, 1024);
        // Small payloads and connections without Snappy are not its business.
        assert_eq!(probe.choose(Compression::Snappy, 10), Compression::Snappy);
        assert_eq!(probe.choose(Compression::None, 1024), Compression::None);
        for _ in 0..MISSES_BEFORE_SKIPPING {
            assert_eq!(snappy(&probe), Compression::Snappy);
            probe.note(false);
        }
        for _ in 0..SKIPPED {
            assert_eq!(snappy(&probe), Compression::None);
        }
        assert_eq!(snappy(&probe), Compression::Snappy, "tried again");
        // One that shrinks starts the count over.
        for _ in 1..MISSES_BEFORE_SKIPPING {
            probe.note(false);
        }
        probe.note(true);
        probe.note(false);
        assert_eq!(snappy(&probe), Compression::Snappy);
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
