//! The Noise handshake and the negotiation that rides in its payloads.
//!
//! Pattern `Noise_XX_25519_ChaChaPoly_BLAKE2s`, or `Noise_XXpsk3_…` when the mesh has a mesh
//! key, with the prologue `"lanmesh v1"`. Noise hashes every payload into the transcript,
//! so tampering with any byte of the offer breaks the handshake.
//!
//! 1. Initiator → router, `-> e`: the [`Offer`] (version, wanted name, mesh, ciphers and
//!    compressions in order of preference, resume token). Ciphers are
//!    `[chacha20poly1305]` by default, `[aes256gcm, chacha20poly1305]` when AES-256-GCM
//!    is preferred, with `none` in front when plaintext is allowed. Not encrypted, but authenticated
//!    by everything that follows.
//! 2. Router → initiator, `<- e, ee, s, es`: the [`Choice`] (cipher, compression, limits,
//!    and, when the offer asked, the router's [`RouterStatus`]), or a refusal with an error code and text when the offer cannot be accepted.
//!    Encrypted; carries the router's static key.
//! 3. Initiator → router, `-> s, se (, psk)`: the confirmation, repeating the choice.
//!    Encrypted; carries the initiator's static key and, with a mesh key, proves it.
//!
//! After message 3 both sides hold a [`Connection`], whose records are Noise transport
//! messages sealed with the keys of Noise's split by [`crate::cipher::RecordCipher`].
//! The router then answers with a `Welcome` frame or an `Error` frame (for example when
//! the name is taken).

use bytes::{BufMut, Bytes, BytesMut};

use crate::algorithms::{Cipher, Compression};
use crate::cipher::{self, RecordCipher};
use crate::compress;
use crate::connection::{Connection, Framing};
use crate::error::{ProtoError, Result};
use crate::frame::ErrorCode;
use crate::limits::{Limits, MAX_HANDSHAKE_MESSAGE, MAX_RECORD, MIN_RECORD};
use crate::name::Name;
use crate::prelude::*;
use crate::random::RandomSource;
use crate::wire::{Reader, put_long, put_short, truncate_utf8};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Domain-separation label hashed into every handshake.
pub const PROLOGUE: &[u8] = b"lanmesh v1";
const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const PATTERN_PSK: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";

/// A static X25519 key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    secret: [u8; 32],
    public: [u8; 32],
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &fingerprint(&self.public))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random key pair from the operating system's generator.
    #[cfg(feature = "std")]
    pub fn generate() -> Result<Self> {
        Self::generate_from(RandomSource::os())
    }

    /// A fresh random key pair drawn from `random` (a board's generator).
    pub fn generate_from(random: RandomSource) -> Result<Self> {
        let kp = random.builder(params(false))?.generate_keypair()?;
        Self::from_parts(&kp.private, &kp.public)
    }

    /// Rebuilds an identity from a stored secret and public key.
    pub fn from_parts(secret: &[u8], public: &[u8]) -> Result<Self> {
        let secret: [u8; 32] = secret
            .try_into()
            .map_err(|_| ProtoError::Malformed { what: "secret key" })?;
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| ProtoError::Malformed { what: "public key" })?;
        Ok(Self { secret, public })
    }

    /// The public half, which identifies this peer.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The secret half, for storing the identity.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// Short printable form of a public key (first 8 bytes, hex).
pub fn fingerprint(key: &[u8; 32]) -> String {
    key[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A 32-byte key written as 64 hex digits (a mesh key as `lanmesh keygen` prints it, a
/// public key), surrounding white space ignored; `None` when the text is not one.
pub fn key_from_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim().as_bytes();
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(key)
}

fn params(psk: bool) -> snow::params::NoiseParams {
    let pattern = if psk { PATTERN_PSK } else { PATTERN };
    pattern
        .parse()
        .expect("the two pattern strings are constants that snow supports")
}

/// What both ends of a handshake need to know.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// This side's static key.
    pub identity: Identity,
    /// The mesh this side belongs to.
    pub mesh: String,
    /// The mesh key; when set, the pattern is `XXpsk3` and only holders of the key get in.
    pub mesh_key: Option<[u8; 32]>,
    /// Accept (router) or offer (peer) unencrypted records. Used only when both agree.
    pub allow_plaintext: bool,
    /// The record cipher a peer prefers (default ChaCha20-Poly1305, the only one offered).
    /// With `Cipher::Aes256Gcm` the offer is `[aes256gcm, chacha20poly1305]`, so a router
    /// without AES falls back; builds without AES (wasm32) ignore it. `Cipher::None` is no
    /// preference: plaintext is `allow_plaintext`'s business. A router ignores this and
    /// accepts every cipher it supports, in the peer's order.
    pub cipher: Cipher,
    /// Offer or accept Snappy compression.
    pub compression: bool,
    /// Limits to enforce.
    pub limits: Limits,
    /// How records are delimited on the transport this handshake runs on.
    pub framing: Framing,
}

impl HandshakeConfig {
    /// A configuration with defaults: encryption required, Snappy on, default limits,
    /// length-prefixed framing.
    pub fn new(identity: Identity, mesh: impl Into<String>) -> Self {
        Self {
            identity,
            mesh: mesh.into(),
            mesh_key: None,
            allow_plaintext: false,
            cipher: Cipher::ChaCha20Poly1305,
            compression: true,
            limits: Limits::default(),
            framing: Framing::LengthPrefixed,
        }
    }

    fn builder(&self, random: RandomSource) -> Result<snow::Builder<'_>> {
        let mut b = random
            .builder(params(self.mesh_key.is_some()))?
            .prologue(PROLOGUE)?
            .local_private_key(&self.identity.secret)?;
        if let Some(key) = &self.mesh_key {
            b = b.psk(3, key)?;
        }
        Ok(b)
    }
}

/// Message 1: what the initiator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Protocol version.
    pub version: u8,
    /// The name to join under; `None` for a query-only connection (e.g. `lanmesh peers`).
    pub name: Option<Name>,
    /// The mesh the initiator wants.
    pub mesh: String,
    /// Acceptable ciphers, most preferred first.
    pub ciphers: Vec<Cipher>,
    /// Acceptable compressions, most preferred first.
    pub compressions: Vec<Compression>,
    /// Token from an earlier session, to resume it (empty when none).
    pub resume: Bytes,
    /// The id slot of a sender session: `0` for the session that receives the name's
    /// messages; non-zero for an extra session of the same key under the same name that
    /// only sends (a `lanmesh send` next to a `lanmesh listen`). Its message ids carry the
    /// slot in their top bits ([`SLOT_SHIFT`]), so answers find their way back to it.
    pub slot: u32,
    /// The largest record the initiator accepts (a small device declares less than
    /// [`MAX_RECORD`]; the router then seals smaller records and chunks messages to fit).
    pub max_record: usize,
    /// The largest message the initiator accepts; the router refuses bigger ones to their
    /// sender with `Nack(TooLarge)`.
    pub max_message: u64,
    /// The TCP port on which the initiator takes direct links from other peers of the mesh
    /// (0: none). The router pairs it with the address it sees the initiator at
    /// ([`crate::PeerInfo::direct`]).
    pub direct_port: u16,
    /// Names the initiator's process, the same across its reconnects (0: none): see
    /// [`crate::PeerInfo::incarnation`].
    pub incarnation: u64,
    /// Ask the router to say how it stands in a federated mesh: its choice then carries a
    /// [`RouterStatus`] (`lanmesh peers` asks). A router that predates the option skips it
    /// and answers without one.
    pub router_status: bool,
}

/// Message ids of a session with id slot `s` are `s << SLOT_SHIFT` plus a counter: 24
/// bits of slot, 40 bits (a trillion messages) of counter.
pub const SLOT_SHIFT: u32 = 40;
/// The largest id slot.
pub const MAX_SLOT: u32 = (1 << 24) - 1;

/// The id slot a message id belongs to (see [`Offer::slot`]).
pub fn slot_of(id: u64) -> u32 {
    u32::try_from(id >> SLOT_SHIFT).unwrap_or(MAX_SLOT)
}

/// Tags of the options after the fixed part of an offer: `tag, length, value` each, so
/// that a side that does not know one skips it.
mod option {
    /// [`super::Offer::slot`], 4 bytes big-endian.
    pub(super) const SLOT: u8 = 1;
    /// [`super::Offer::max_record`], 4 bytes big-endian.
    pub(super) const MAX_RECORD: u8 = 2;
    /// [`super::Offer::max_message`], 8 bytes big-endian.
    pub(super) const MAX_MESSAGE: u8 = 3;
    /// [`super::Offer::direct_port`], 2 bytes big-endian.
    pub(super) const DIRECT_PORT: u8 = 5;
    /// [`super::Offer::incarnation`], 8 bytes big-endian.
    pub(super) const INCARNATION: u8 = 6;
    /// [`super::Offer::router_status`], no value.
    pub(super) const ROUTER_STATUS: u8 = 4;
}

/// Tags of the options after the fixed part of a choice, `tag, length, value` like the
/// offer's. A router sends one only when the offer asked for it, so an initiator that
/// predates them (and reads a choice to its end) never sees one.
mod choice_option {
    /// [`super::RouterStatus`]: the state (0 not federated, 1 federated and connected,
    /// 2 federated and not connected), then the router's name in the mesh.
    pub(super) const ROUTER_STATUS: u8 = 1;
}

impl Offer {
    /// What a peer configured with `config` offers, joining as `name` (a receiving
    /// session: slot 0).
    pub fn new(config: &HandshakeConfig, name: Option<Name>, resume: Bytes) -> Self {
        let mut ciphers = Vec::with_capacity(3);
        if config.allow_plaintext {
            ciphers.push(Cipher::None);
        }
        if config.cipher == Cipher::Aes256Gcm && cipher::is_supported(Cipher::Aes256Gcm) {
            ciphers.push(Cipher::Aes256Gcm);
        }
        // Always offered, last: every router speaks it.
        ciphers.push(Cipher::ChaCha20Poly1305);
        let compressions = if config.compression && compress::is_supported(Compression::Snappy) {
            vec![Compression::Snappy, Compression::None]
        } else {
            vec![Compression::None]
        };
        Offer {
            version: PROTOCOL_VERSION,
            name,
            mesh: config.mesh.clone(),
            ciphers,
            compressions,
            resume,
            slot: 0,
            max_record: config.limits.max_record.clamp(MIN_RECORD, MAX_RECORD),
            max_message: config.limits.max_message,
            direct_port: 0,
            incarnation: 0,
            router_status: false,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(self.version);
        put_short(
            &mut b,
            self.name
                .as_ref()
                .map_or(&[][..], |n| n.as_str().as_bytes()),
        );
        put_short(&mut b, truncate_utf8(&self.mesh, 255).as_bytes());
        let ciphers: Vec<u8> = self.ciphers.iter().map(|c| c.to_u8()).collect();
        put_short(&mut b, &ciphers);
        let comps: Vec<u8> = self.compressions.iter().map(|c| c.to_u8()).collect();
        put_short(&mut b, &comps);
        put_short(&mut b, &self.resume);
        // Options, only when they differ from their defaults: an offer without any is the
        // same bytes as before options existed.
        if self.slot != 0 {
            b.put_u8(option::SLOT);
            b.put_u8(4);
            b.put_u32(self.slot);
        }
        if self.max_record < MAX_RECORD {
            b.put_u8(option::MAX_RECORD);
            b.put_u8(4);
            b.put_u32(u32::try_from(self.max_record).unwrap_or(u32::MAX));
        }
        if self.max_message < Limits::default().max_message {
            b.put_u8(option::MAX_MESSAGE);
            b.put_u8(8);
            b.put_u64(self.max_message);
        }
        if self.direct_port != 0 {
            b.put_u8(option::DIRECT_PORT);
            b.put_u8(2);
            b.put_u16(self.direct_port);
        }
        if self.incarnation != 0 {
            b.put_u8(option::INCARNATION);
            b.put_u8(8);
            b.put_u64(self.incarnation);
        }
        if self.router_status {
            b.put_u8(option::ROUTER_STATUS);
            b.put_u8(0);
        }
        b.to_vec()
    }

    #[cfg(test)]
    pub(crate) fn encode_for_test(&self) -> Vec<u8> {
        self.encode()
    }

    fn decode(buf: Bytes) -> Result<Self> {
        let mut r = Reader::new(buf, "offer");
        let version = r.u8()?;
        let name = r.short_bytes()?;
        let name = if name.is_empty() {
            None
        } else {
            Some(Name::from_bytes(name)?)
        };
        let mesh = r.short_string()?;
        let ciphers = r
            .short_bytes()?
            .iter()
            .filter_map(|b| Cipher::from_u8(*b).ok())
            .collect();
        let compressions = r
            .short_bytes()?
            .iter()
            .filter_map(|b| Compression::from_u8(*b).ok())
            .collect();
        let resume = r.short_bytes()?;
        let mut slot = 0;
        let mut max_record = MAX_RECORD;
        let mut max_message = Limits::default().max_message;
        let mut direct_port = 0;
        let mut incarnation = 0;
        let mut router_status = false;
        while !r.is_empty() {
            let tag = r.u8()?;
            let value = r.short_bytes()?;
            // An option of a later version is skipped.
            match tag {
                option::SLOT => {
                    let v: [u8; 4] = value[..]
                        .try_into()
                        .map_err(|_| ProtoError::Malformed { what: "offer slot" })?;
                    slot = u32::from_be_bytes(v);
                    if slot > MAX_SLOT {
                        return Err(ProtoError::Malformed { what: "offer slot" });
                    }
                }
                option::MAX_RECORD => {
                    let what = "offer record limit";
                    let v: [u8; 4] = value[..]
                        .try_into()
                        .map_err(|_| ProtoError::Malformed { what })?;
                    max_record = usize::try_from(u32::from_be_bytes(v))
                        .map_err(|_| ProtoError::Malformed { what })?;
                    if !(MIN_RECORD..=MAX_RECORD).contains(&max_record) {
                        return Err(ProtoError::Malformed { what });
                    }
                }
                option::MAX_MESSAGE => {
                    let v: [u8; 8] = value[..].try_into().map_err(|_| ProtoError::Malformed {
                        what: "offer message limit",
                    })?;
                    max_message = u64::from_be_bytes(v);
                }
                option::DIRECT_PORT => {
                    let v: [u8; 2] = value[..].try_into().map_err(|_| ProtoError::Malformed {
                        what: "offer direct port",
                    })?;
                    direct_port = u16::from_be_bytes(v);
                }
                option::INCARNATION => {
                    let v: [u8; 8] = value[..].try_into().map_err(|_| ProtoError::Malformed {
                        what: "offer incarnation",
                    })?;
                    incarnation = u64::from_be_bytes(v);
                }
                option::ROUTER_STATUS => router_status = true,
                _ => {}
            }
        }
        Ok(Self {
            version,
            name,
            mesh,
            ciphers,
            compressions,
            resume,
            slot,
            max_record,
            max_message,
            direct_port,
            incarnation,
            router_status,
        })
    }
}

/// Message 2: what the router chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Protocol version.
    pub version: u8,
    /// The chosen cipher, one the initiator offered.
    pub cipher: Cipher,
    /// The chosen compression, one the initiator offered.
    pub compression: Compression,
    /// The router's message size limit.
    pub max_message: u64,
    /// How the router stands in a federated mesh, when the offer asked
    /// ([`Offer::router_status`]) and the router knows the option.
    pub router_status: Option<RouterStatus>,
}

/// What a router says of itself when asked ([`Offer::router_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterStatus {
    /// Its name among the routers of a federated mesh; `None`: not federated.
    pub router: Option<String>,
    /// Federated and connected to the other routers (NATS) right now.
    pub connected: bool,
}

impl RouterStatus {
    fn encode(&self) -> Vec<u8> {
        let state = match (&self.router, self.connected) {
            (None, _) => 0,
            (Some(_), true) => 1,
            (Some(_), false) => 2,
        };
        let mut b = Vec::new();
        b.put_u8(state);
        if let Some(router) = &self.router {
            b.extend_from_slice(truncate_utf8(router, 200).as_bytes());
        }
        b
    }

    fn decode(value: &[u8]) -> Result<Self> {
        let what = "router status";
        let (&state, name) = value.split_first().ok_or(ProtoError::Malformed { what })?;
        let name = core::str::from_utf8(name).map_err(|_| ProtoError::Malformed { what })?;
        let router = (state != 0).then(|| name.to_owned());
        match state {
            0..=2 => Ok(Self {
                router,
                connected: state == 1,
            }),
            _ => Err(ProtoError::Malformed { what }),
        }
    }
}

const CHOICE: u8 = 0;
const REFUSAL: u8 = 1;

impl Choice {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12);
        b.put_u8(CHOICE);
        b.put_u8(self.version);
        b.put_u8(self.cipher.to_u8());
        b.put_u8(self.compression.to_u8());
        b.put_u64(self.max_message);
        if let Some(status) = &self.router_status {
            b.put_u8(choice_option::ROUTER_STATUS);
            put_short(&mut b, &status.encode());
        }
        b
    }
}

fn encode_refusal(code: ErrorCode, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u8(REFUSAL);
    b.put_u16(code.to_u16());
    put_long(&mut b, truncate_utf8(text, 512).as_bytes());
    b
}

/// Message 2 as the initiator reads it.
fn decode_answer(buf: Bytes) -> Result<Choice> {
    let mut r = Reader::new(buf, "choice");
    match r.u8()? {
        CHOICE => {
            let mut choice = Choice {
                version: r.u8()?,
                cipher: Cipher::from_u8(r.u8()?)?,
                compression: Compression::from_u8(r.u8()?)?,
                max_message: r.u64()?,
                router_status: None,
            };
            while !r.is_empty() {
                let tag = r.u8()?;
                let value = r.short_bytes()?;
                // An option of a later version is skipped.
                if tag == choice_option::ROUTER_STATUS {
                    choice.router_status = Some(RouterStatus::decode(&value)?);
                }
            }
            Ok(choice)
        }
        REFUSAL => {
            let code = ErrorCode::from_u16(r.u16()?);
            let text = r.long_string()?;
            Err(ProtoError::Remote { code, text })
        }
        _ => Err(ProtoError::Malformed { what: "choice" }),
    }
}

/// The result of a completed handshake.
#[derive(Debug)]
pub struct Established {
    /// The transport phase, ready for frames.
    pub connection: Connection,
    /// The other side's static public key.
    pub remote_key: [u8; 32],
    /// The offer as the router received it (and as the initiator sent it).
    pub offer: Offer,
    /// The router's choice.
    pub choice: Choice,
}

fn check_len(msg: &[u8]) -> Result<()> {
    if msg.len() > MAX_HANDSHAKE_MESSAGE {
        return Err(ProtoError::HandshakeTooLarge {
            len: msg.len(),
            max: MAX_HANDSHAKE_MESSAGE,
        });
    }
    Ok(())
}

fn read(hs: &mut snow::HandshakeState, msg: &[u8], during: &'static str) -> Result<Bytes> {
    check_len(msg)?;
    let mut out = vec![0u8; msg.len()];
    let n = hs.read_message(msg, &mut out).map_err(|e| match e {
        snow::Error::Decrypt => ProtoError::Decrypt { during },
        snow::Error::Input => ProtoError::Malformed { what: during },
        other => ProtoError::from(other),
    })?;
    out.truncate(n);
    Ok(Bytes::from(out))
}

fn write(hs: &mut snow::HandshakeState, payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; MAX_HANDSHAKE_MESSAGE];
    let n = hs.write_message(payload, &mut out)?;
    out.truncate(n);
    Ok(out)
}

fn remote_key(hs: &snow::HandshakeState) -> Result<[u8; 32]> {
    hs.get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or(ProtoError::Noise("no remote static key after XX".into()))
}

/// The record cipher of a finished handshake: Noise's split, keyed for `cipher` (`None`
/// for plaintext records).
fn record_cipher(hs: &mut snow::HandshakeState, cipher: Cipher) -> Result<Option<RecordCipher>> {
    if !hs.is_handshake_finished() {
        return Err(ProtoError::Noise("handshake not finished".into()));
    }
    if cipher == Cipher::None {
        return Ok(None);
    }
    let (first, second) = hs.dangerously_get_raw_split();
    RecordCipher::new(cipher, hs.is_initiator(), &first, &second).map(Some)
}

/// The connecting side (a peer).
pub struct Initiator {
    hs: snow::HandshakeState,
    offer: Offer,
    framing: Framing,
}

impl core::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Initiator")
            .field("offer", &self.offer)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake; returns the initiator and message 1 to send.
    pub fn start(
        config: &HandshakeConfig,
        name: Option<Name>,
        resume: Bytes,
    ) -> Result<(Self, Vec<u8>)> {
        Self::start_with_offer(config, Offer::new(config, name, resume))
    }

    /// Starts a handshake with a hand-made offer (tests use it to misbehave).
    pub fn start_with_offer(config: &HandshakeConfig, offer: Offer) -> Result<(Self, Vec<u8>)> {
        Self::start_with_random(config, offer, RandomSource::default())
    }

    /// Starts a handshake with `offer`, its ephemeral key drawn from `random` (a board's
    /// generator; [`start_with_offer`](Self::start_with_offer) uses the default source).
    pub fn start_with_random(
        config: &HandshakeConfig,
        offer: Offer,
        random: RandomSource,
    ) -> Result<(Self, Vec<u8>)> {
        let mut hs = config.builder(random)?.build_initiator()?;
        let msg1 = write(&mut hs, &offer.encode())?;
        Ok((
            Self {
                hs,
                offer,
                framing: config.framing,
            },
            msg1,
        ))
    }

    /// Reads message 2 and returns the connection and message 3 to send.
    pub fn read_choice(mut self, msg2: &[u8]) -> Result<(Established, Vec<u8>)> {
        let choice = decode_answer(read(&mut self.hs, msg2, "handshake message 2")?)?;
        if choice.version != self.offer.version {
            return Err(ProtoError::Version {
                ours: self.offer.version,
                theirs: choice.version,
            });
        }
        if !self.offer.ciphers.contains(&choice.cipher) {
            return Err(ProtoError::Negotiation {
                what: "router chose a cipher we did not offer",
            });
        }
        if !self.offer.compressions.contains(&choice.compression) {
            return Err(ProtoError::Negotiation {
                what: "router chose a compression we did not offer",
            });
        }
        let confirm = [choice.cipher.to_u8(), choice.compression.to_u8()];
        let msg3 = write(&mut self.hs, &confirm)?;
        let remote_key = remote_key(&self.hs)?;
        let records = record_cipher(&mut self.hs, choice.cipher)?;
        let connection = Connection::new(records, choice.cipher, choice.compression, self.framing);
        Ok((
            Established {
                connection,
                remote_key,
                offer: self.offer,
                choice,
            },
            msg3,
        ))
    }
}

/// The accepting side (the router).
pub struct Responder {
    hs: snow::HandshakeState,
    config: HandshakeConfig,
    offer: Option<Offer>,
    choice: Option<Choice>,
    /// What to answer an offer that asks how the router stands.
    status: RouterStatus,
}

impl core::fmt::Debug for Responder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Responder")
            .field("offer", &self.offer)
            .finish_non_exhaustive()
    }
}

/// What the router answers to message 1.
#[derive(Debug)]
pub enum Answer {
    /// The offer is acceptable: send message 2 and wait for message 3.
    Accept(Vec<u8>),
    /// The offer is not acceptable: send this message 2 (an encrypted refusal the peer can
    /// show), then close. The error says why.
    Refuse(Vec<u8>, ProtoError),
}

impl Responder {
    /// A responder waiting for message 1.
    pub fn new(config: &HandshakeConfig) -> Result<Self> {
        Self::new_with_random(config, RandomSource::default())
    }

    /// A responder whose ephemeral key is drawn from `random`.
    pub fn new_with_random(config: &HandshakeConfig, random: RandomSource) -> Result<Self> {
        let hs = config.builder(random)?.build_responder()?;
        Ok(Self {
            hs,
            config: config.clone(),
            offer: None,
            choice: None,
            status: RouterStatus {
                router: None,
                connected: false,
            },
        })
    }

    /// What the choice says of this router to an offer that asks (default: not
    /// federated). Set before message 1 is read.
    pub fn set_router_status(&mut self, status: RouterStatus) {
        self.status = status;
    }

    /// The offer, once message 1 has been read.
    pub fn offer(&self) -> Option<&Offer> {
        self.offer.as_ref()
    }

    /// Reads message 1 and decides. Malformed input is an `Err` (close without answering);
    /// a well-formed but unacceptable offer is an `Answer::Refuse`.
    pub fn read_offer(&mut self, msg1: &[u8]) -> Result<Answer> {
        let offer = Offer::decode(read(&mut self.hs, msg1, "handshake message 1")?)?;
        let decision = self.decide(&offer);
        self.offer = Some(offer);
        match decision {
            Ok(choice) => {
                let msg2 = write(&mut self.hs, &choice.encode())?;
                self.choice = Some(choice);
                Ok(Answer::Accept(msg2))
            }
            Err(err) => {
                let msg2 = write(&mut self.hs, &encode_refusal(err.code(), &err.to_string()))?;
                Ok(Answer::Refuse(msg2, err))
            }
        }
    }

    fn decide(&self, offer: &Offer) -> Result<Choice> {
        if offer.version != PROTOCOL_VERSION {
            return Err(ProtoError::Version {
                ours: PROTOCOL_VERSION,
                theirs: offer.version,
            });
        }
        if offer.mesh != self.config.mesh {
            return Err(ProtoError::MeshMismatch {
                ours: self.config.mesh.clone(),
                theirs: offer.mesh.clone(),
            });
        }
        if let Some(name) = &offer.name {
            name.check_len(self.config.limits.max_name_len)?;
        }
        let cipher = offer
            .ciphers
            .iter()
            .copied()
            .find(|c| match c {
                Cipher::None => self.config.allow_plaintext,
                Cipher::ChaCha20Poly1305 | Cipher::Aes256Gcm => cipher::is_supported(*c),
            })
            .ok_or_else(|| ProtoError::NoCommonAlgorithm {
                what: "cipher",
                offered: format!("{:?}", offer.ciphers),
            })?;
        let compression = offer
            .compressions
            .iter()
            .copied()
            .find(|c| {
                *c == Compression::None || (self.config.compression && compress::is_supported(*c))
            })
            .ok_or_else(|| ProtoError::NoCommonAlgorithm {
                what: "compression",
                offered: format!("{:?}", offer.compressions),
            })?;
        Ok(Choice {
            version: PROTOCOL_VERSION,
            cipher,
            compression,
            max_message: self.config.limits.max_message,
            router_status: offer.router_status.then(|| self.status.clone()),
        })
    }

    /// Reads message 3 and completes the handshake.
    pub fn read_confirm(mut self, msg3: &[u8]) -> Result<Established> {
        let (Some(offer), Some(choice)) = (self.offer.take(), self.choice.take()) else {
            return Err(ProtoError::Negotiation {
                what: "message 3 before an accepted offer",
            });
        };
        let confirm = read(&mut self.hs, msg3, "handshake message 3")?;
        if confirm[..] != [choice.cipher.to_u8(), choice.compression.to_u8()] {
            return Err(ProtoError::Negotiation {
                what: "confirmation does not repeat the choice",
            });
        }
        let remote_key = remote_key(&self.hs)?;
        let records = record_cipher(&mut self.hs, choice.cipher)?;
        let connection = Connection::new(
            records,
            choice.cipher,
            choice.compression,
            self.config.framing,
        );
        Ok(Established {
            connection,
            remote_key,
            offer,
            choice,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_options_round_trip_and_unknown_ones_are_skipped() {
        let config = HandshakeConfig::new(Identity::generate().unwrap(), "m");
        let plain = Offer::new(&config, Some(Name::new("a").unwrap()), Bytes::new());
        let mut sender = plain.clone();
        sender.slot = 0x00ab_cdef;
        let bytes = sender.encode();
        // A receiving session's offer is what it was before options existed.
        assert_eq!(bytes.len(), plain.encode().len() + 6);
        assert_eq!(&bytes[bytes.len() - 6..], &[1, 4, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(Offer::decode(Bytes::from(bytes)).unwrap(), sender);
        // A peer taking direct links says on which port.
        let mut direct = plain.clone();
        direct.direct_port = 7411;
        let bytes = direct.encode();
        assert_eq!(&bytes[bytes.len() - 4..], &[5, 2, 0x1c, 0xf3]);
        assert_eq!(Offer::decode(Bytes::from(bytes)).unwrap().direct_port, 7411);
        // And the process it is, across reconnects.
        let mut process = plain.clone();
        process.incarnation = 0x0102_0304_0506_0708;
        let bytes = process.encode();
        assert_eq!(&bytes[bytes.len() - 10..], &[6, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Offer::decode(Bytes::from(bytes)).unwrap(), process);
        // An option this version does not know, then ours: the first is skipped.
        let mut later = plain.encode();
        later.extend_from_slice(&[9, 2, 7, 7]);
        later.extend_from_slice(&[1, 4, 0, 0, 0, 5]);
        assert_eq!(Offer::decode(Bytes::from(later)).unwrap().slot, 5);
        // A slot beyond 24 bits, or a truncated option, is malformed.
        let mut bad = plain.encode();
        bad.extend_from_slice(&[1, 4, 1, 0, 0, 0]);
        assert!(Offer::decode(Bytes::from(bad)).is_err());
        let mut cut = plain.encode();
        cut.extend_from_slice(&[1, 4, 0]);
        assert!(Offer::decode(Bytes::from(cut)).is_err());
        assert_eq!(slot_of((5 << SLOT_SHIFT) + 17), 5);
    }

    #[test]
    fn a_router_status_is_in_the_choice_only_when_the_offer_asks() {
        let config = HandshakeConfig::new(Identity::generate().unwrap(), "m");
        let mut asking = Offer::new(&config, None, Bytes::new());
        asking.router_status = true;
        let bytes = asking.encode();
        assert_eq!(&bytes[bytes.len() - 2..], &[4, 0]);
        assert_eq!(Offer::decode(Bytes::from(bytes)).unwrap(), asking);
        let fixed = Choice {
            version: PROTOCOL_VERSION,
            cipher: Cipher::ChaCha20Poly1305,
            compression: Compression::None,
            max_message: 1 << 20,
            router_status: None,
        };
        // Without a status the choice is the 12 bytes it always was.
        assert_eq!(fixed.encode().len(), 12);
        for status in [
            RouterStatus {
                router: None,
                connected: false,
            },
            RouterStatus {
                router: Some("site-a".into()),
                connected: true,
            },
            RouterStatus {
                router: Some("site-b".into()),
                connected: false,
            },
        ] {
            let choice = Choice {
                router_status: Some(status),
                ..fixed.clone()
            };
            assert_eq!(decode_answer(Bytes::from(choice.encode())).unwrap(), choice);
        }
        // A later option is skipped; a bad state is malformed.
        let mut later = fixed.encode();
        later.extend_from_slice(&[9, 1, 0]);
        assert_eq!(decode_answer(Bytes::from(later)).unwrap(), fixed);
        let mut bad = fixed.encode();
        bad.extend_from_slice(&[1, 1, 7]);
        assert!(decode_answer(Bytes::from(bad)).is_err());
    }

    #[test]
    fn keys_read_from_hex_are_exactly_64_digits() {
        let key = key_from_hex(&format!(" {}\n", "aB".repeat(32))).unwrap();
        assert_eq!(key, [0xab; 32]);
        assert_eq!(key_from_hex("abcd"), None);
        assert_eq!(key_from_hex(&"g".repeat(64)), None);
        assert_eq!(key_from_hex(&"a".repeat(65)), None);
    }
}
