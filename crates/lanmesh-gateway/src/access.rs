//! Who may read `GET /api/peers` and `GET /metrics`.
//!
//! The HTTP port must not reveal more than a peer without the mesh key could learn. So:
//!
//! 1. Without a mesh key the mesh is open to everyone on the LAN: so is the API.
//! 2. With a mesh key, the API answers requests from loopback (the router's own machine;
//!    [`GatewayConfig::trust_loopback`], on by default) and requests carrying
//!    `Authorization: Bearer <token>`, where the token is [`http_token`] of the mesh key —
//!    anyone holding the key can compute it, nobody else can. Any other request gets 401
//!    (no token) or 403 (a wrong one) with a body saying what is needed.
//! 3. [`GatewayConfig::api`] off: both paths answer 404 to everyone.
//!
//! `GET /mesh` stays open: its Noise handshake already requires the key. The dashboard
//! and the wasm client are public files.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// Domain-separation label of the HTTP token (versioned like the handshake prologue).
const TOKEN_LABEL: &[u8] = b"lanmesh v1 http api token";

/// How the gateway serves its JSON API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Serve `/api/peers` and `/metrics` at all (default on; `lanmesh router --no-api`).
    pub api: bool,
    /// On a keyed mesh, answer requests from loopback addresses without a token (default
    /// on; `lanmesh router --api-require-token` turns it off, for hosts shared with
    /// users who must not see the mesh).
    pub trust_loopback: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            api: true,
            trust_loopback: true,
        }
    }
}

/// The bearer token that opens `/api/peers` and `/metrics` of a mesh with this key:
/// HMAC-SHA256 of a fixed label under the mesh key, as 64 hex digits. It reveals nothing
/// of the key, and changes with it.
pub fn http_token(mesh_key: &[u8; 32]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mesh_key);
    hex::encode(ring::hmac::sign(&key, TOKEN_LABEL).as_ref())
}

/// What the policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// The API is turned off.
    Off,
    /// A keyed mesh and no token (or not a bearer one).
    NeedToken,
    /// A token that is not the mesh's.
    WrongToken,
}

/// The policy with the mesh key it checks tokens against.
pub(crate) struct Access {
    config: GatewayConfig,
    /// `None`: a mesh without a key, open to all.
    key: Option<ring::hmac::Key>,
}

impl Access {
    pub(crate) fn new(config: GatewayConfig, mesh_key: Option<&[u8; 32]>) -> Self {
        Self {
            config,
            key: mesh_key.map(|k| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k)),
        }
    }

    /// The verdict for a request from `remote` with this `Authorization` header value.
    pub(crate) fn check(&self, remote: Option<IpAddr>, authorization: Option<&[u8]>) -> Verdict {
        if !self.config.api {
            return Verdict::Off;
        }
        let Some(key) = &self.key else {
            return Verdict::Allow;
        };
        if self.config.trust_loopback && remote.is_some_and(|ip| is_loopback(&ip)) {
            return Verdict::Allow;
        }
        let Some(value) = authorization else {
            return Verdict::NeedToken;
        };
        let Some(token) = value
            .strip_prefix(b"Bearer ")
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty())
        else {
            return Verdict::NeedToken;
        };
        // Compared as the MAC it is, in constant time; a token that is not hex fails too.
        match hex::decode(token) {
            Ok(tag) if ring::hmac::verify(key, TOKEN_LABEL, &tag).is_ok() => Verdict::Allow,
            _ => Verdict::WrongToken,
        }
    }

    /// `None` when `req` may be answered, else the refusal to send.
    pub(crate) fn refuse(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let verdict = self.check(req.peer_addr().map(|a| a.ip()), auth);
        let text =
            match verdict {
                Verdict::Allow => return None,
                Verdict::Off => {
                    return Some(HttpResponse::NotFound().content_type("text/plain").body(
                        "the JSON API and metrics are turned off on this router (--no-api)\n",
                    ));
                }
                Verdict::NeedToken => {
                    "this mesh has a key: /api/peers and /metrics answer the router's own machine, \
                 or a request with `Authorization: Bearer TOKEN`, where TOKEN is what \
                 `lanmesh router --mesh-key-file F --print-http-token` prints\n"
                }
                Verdict::WrongToken => "wrong token for this mesh's /api/peers and /metrics\n",
            };
        let mut refusal = if verdict == Verdict::NeedToken {
            HttpResponse::Unauthorized()
        } else {
            HttpResponse::Forbidden()
        };
        Some(
            refusal
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"lanmesh\""))
                .content_type("text/plain")
                .body(text),
        )
    }
}

/// Loopback, also as an IPv4-mapped IPv6 address (a dual-stack socket reports those).
fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const LAN: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20)));
    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn a_mesh_without_a_key_is_open() {
        let a = Access::new(GatewayConfig::default(), None);
        assert_eq!(a.check(LAN, None), Verdict::Allow);
    }

    #[test]
    fn a_keyed_mesh_answers_loopback_and_the_token_only() {
        let a = Access::new(GatewayConfig::default(), Some(&KEY));
        let token = http_token(&KEY);
        assert_eq!(a.check(LOOPBACK, None), Verdict::Allow);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(a.check(Some(mapped), None), Verdict::Allow);
        assert_eq!(a.check(LAN, None), Verdict::NeedToken);
        assert_eq!(a.check(None, None), Verdict::NeedToken);
        assert_eq!(a.check(LAN, Some(&bearer(&token))), Verdict::Allow);
        assert_eq!(a.check(LAN, Some(token.as_bytes())), Verdict::NeedToken);
        assert_eq!(a.check(LAN, Some(b"Bearer ")), Verdict::NeedToken);
        let other = http_token(&[8; 32]);
        assert_eq!(a.check(LAN, Some(&bearer(&other))), Verdict::WrongToken);
        assert_eq!(a.check(LAN, Some(&bearer("not hex"))), Verdict::WrongToken);
        assert_eq!(
            a.check(LAN, Some(&bearer(&token[..62]))),
            Verdict::WrongToken,
            "a prefix of the token is not the token"
        );
    }

    #[test]
    fn loopback_can_be_made_to_need_the_token() {
        let config = GatewayConfig {
            trust_loopback: false,
            ..GatewayConfig::default()
        };
        let a = Access::new(config, Some(&KEY));
        assert_eq!(a.check(LOOPBACK, None), Verdict::NeedToken);
        assert_eq!(
            a.check(LOOPBACK, Some(&bearer(&http_token(&KEY)))),
            Verdict::Allow
        );
    }

    #[test]
    fn the_api_can_be_turned_off() {
        let config = GatewayConfig {
            api: false,
            ..GatewayConfig::default()
        };
        let a = Access::new(config, None);
        assert_eq!(a.check(LOOPBACK, None), Verdict::Off);
    }

    #[test]
    fn the_token_is_fixed_by_the_key() {
        // A snapshot: the token is a contract between `--print-http-token` and the
        // scripts that use it, so a change must be deliberate.
        // HMAC-SHA256(key, label), as Python's `hmac.new(bytes([7] * 32),
        // b"lanmesh v1 http api token", "sha256").hexdigest()` gives it too.
        assert_eq!(
            http_token(&KEY),
            "e8592c6fbbfeea6ddeb659871168c7da8070c7789e251bc6ff02e36c56db2910"
        );
        assert_ne!(http_token(&KEY), http_token(&[8; 32]));
        assert_eq!(http_token(&KEY).len(), 64);
    }
}
