//! Where the handshake's randomness comes from: the ephemeral key of every handshake and
//! the static key of a new [`Identity`](crate::Identity).
//!
//! With the `std` feature the default is the operating system (getrandom; in a browser
//! `crypto.getRandomValues`). A board has no OS: its driver names a function that fills a
//! buffer from the board's random number generator (a TRNG peripheral, or a CSPRNG seeded
//! from one), and the handshake calls it through snow's resolver. A build without `std`
//! and without such a function fails the handshake with
//! [`ProtoError::NoRandomness`](crate::ProtoError::NoRandomness) rather than running with
//! predictable keys.

#[cfg(not(feature = "std"))]
use crate::error::ProtoError;
use crate::error::Result;
use crate::prelude::*;

/// Fills the whole buffer with cryptographically secure random bytes; `false` when the
/// generator failed (the handshake then fails, it never runs on partial randomness).
pub type FillRandom = fn(&mut [u8]) -> bool;

/// A source of randomness for handshakes and new identities. Cheap to copy.
///
/// A plain function rather than a boxed generator, so that it can be copied into every
/// handshake and needs no atomics (`riscv32imc` has none): a board keeps its generator in
/// a static behind its critical section.
#[derive(Clone, Copy)]
pub struct RandomSource(Source);

#[derive(Clone, Copy)]
enum Source {
    /// The operating system, through snow's own resolver (getrandom).
    #[cfg(feature = "std")]
    Os,
    /// A function the board supplies.
    Fill(FillRandom),
    /// None at all (a `no_std` build whose driver gave none).
    #[cfg(not(feature = "std"))]
    Missing,
}

impl RandomSource {
    /// The operating system's generator.
    #[cfg(feature = "std")]
    pub fn os() -> Self {
        Self(Source::Os)
    }

    /// A generator the caller supplies (a board's hardware RNG).
    pub fn from_fn(fill: FillRandom) -> Self {
        Self(Source::Fill(fill))
    }

    /// A snow builder for `params` that draws its randomness from this source.
    pub(crate) fn builder<'a>(
        self,
        params: snow::params::NoiseParams,
    ) -> Result<snow::Builder<'a>> {
        match self.0 {
            #[cfg(feature = "std")]
            Source::Os => Ok(snow::Builder::new(params)),
            Source::Fill(fill) => Ok(snow::Builder::with_resolver(
                params,
                Box::new(BoardResolver { fill }),
            )),
            #[cfg(not(feature = "std"))]
            Source::Missing => Err(ProtoError::NoRandomness),
        }
    }
}

impl Default for RandomSource {
    /// The OS with `std`; none without (the handshake then fails clearly).
    fn default() -> Self {
        #[cfg(feature = "std")]
        {
            Self::os()
        }
        #[cfg(not(feature = "std"))]
        {
            Self(Source::Missing)
        }
    }
}

impl core::fmt::Debug for RandomSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self.0 {
            #[cfg(feature = "std")]
            Source::Os => "RandomSource::Os",
            Source::Fill(_) => "RandomSource::Fn",
            #[cfg(not(feature = "std"))]
            Source::Missing => "RandomSource::Missing",
        })
    }
}

/// snow's default primitives (X25519, BLAKE2s, ChaCha20-Poly1305), with the board's
/// generator instead of getrandom.
struct BoardResolver {
    fill: FillRandom,
}

struct BoardRng {
    fill: FillRandom,
}

impl snow::types::Random for BoardRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> core::result::Result<(), snow::Error> {
        if (self.fill)(dest) {
            Ok(())
        } else {
            Err(snow::Error::Rng)
        }
    }
}

impl snow::resolvers::CryptoResolver for BoardResolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(BoardRng { fill: self.fill }))
    }

    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        snow::resolvers::DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(
        &self,
        choice: &snow::params::HashChoice,
    ) -> Option<Box<dyn snow::types::Hash>> {
        snow::resolvers::DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(
        &self,
        choice: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        snow::resolvers::DefaultResolver.resolve_cipher(choice)
    }
}
