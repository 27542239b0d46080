//! Federation: the routers of one mesh joined through a NATS cluster (the `federation`
//! feature, `lanmesh router --federate nats://..`).
//!
//! The router's data path is unchanged: a remote name is one more entry of the routing
//! snapshot, whose route leads to an inbox that this module's driver empties onto NATS
//! instead of to a session. What comes back from NATS is pushed into the local sessions'
//! inboxes like any forward. The pieces:
//!
//! * `wire` (no IO): subjects, bucket names, the stored values, frame batches;
//! * `mesh` (no IO, time passed in): the remote names and when each was refreshed;
//! * `credit` (no IO, time passed in): what was published to a remote name and not yet
//!   handed to its session, which holds local senders back (backpressure across routers);
//! * `driver`: the NATS client around them.
//!
//! The flow, for a router `R` with member `a` and a remote member `b` at router `S`:
//!
//! 1. `a` joins: the router binds `a` to its key in the bindings bucket (`create`, atomic:
//!    another key bound there first means `NameTaken`), admits it, and the driver puts its
//!    presence (name, key, router, details) in the presence bucket, refreshed every third of
//!    the TTL, and subscribes to `a`'s subject.
//! 2. Every driver watches the presence bucket: `b`'s entry makes `R` add `b` to its
//!    routing snapshot (a `PeerJoined` for its members) with a route to an inbox of `R`'s
//!    driver; an entry deleted, or not refreshed in time, removes it (`PeerLeft`).
//! 3. `a` sends to `b`: `a`'s session forwards the `Deliver` to `b`'s route as to any
//!    session; `R`'s driver publishes it, as the frame encoding has it (payload untouched,
//!    compressed or not), on `b`'s subject. `S`'s driver delivers it to `b`'s session.
//! 4. `b` acks or answers: `S`'s session forwards the `Ack`/`Nack`/reply to `a`'s route,
//!    which at `S` is remote: it crosses back the same way, on `a`'s subject.
//! 5. `a` broadcasts: once per other router, not per remote member (see `broadcast`).
//! 6. What cannot be delivered (no such session any more, a full inbox) is `Nack`ed to
//!    the sender, as on one router, the nacks for one sender batched like forwards. A
//!    `send_acked` message that cannot cross for a moment (NATS out of reach, or lost
//!    with a NATS node) is not: its sender's acked stream sends it again until it is
//!    acknowledged, and the recipient drops what arrives twice, so it still arrives once
//!    and in order while the remote name is known (its presence not expired).
//! 7. `S` holds what it receives for `b` while `b`'s session is congested, as a local
//!    sender would, and confirms each batch once handed over; `R` counts what it
//!    published to `b` until then, so `a` is slowed down rather than refused (`credit`).
//!
//! **A router restart.** A peer that rejoins through a restarted router is announced
//! anew (a new presence, so `PeerJoined` at every other router). Its offer carries its
//! incarnation (a random number naming its process, kept across reconnects), which the
//! presence carries inside its `PeerInfo`: a partner that knew that incarnation keeps its
//! acked stream with it instead of starting over, and the rejoined peer, whose new router
//! may not know its partners until their next presence refresh, keeps acked messages to
//! them waiting instead of failing them with `UnknownPeer` (see the peer core's
//! `missing`). Both were measured before: with a changes-only watch every send after the
//! restart failed with `UnknownPeer`; with a watch from the current entries, restarting
//! the sender's router left its chain linked to what the receiver had forgotten.
//!
//! A router that loses NATS keeps serving its own peers: nothing local waits for NATS
//! (a join waits for the bindings bucket at most [`CLAIM_TIMEOUT`], then binds the name
//! here only, and says so in the log). The client reconnects by itself; presence is put
//! again at the next refresh.

mod broadcast;
mod credit;
mod driver;
pub(crate) mod mesh;
mod release;
pub(crate) mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::Message;
use async_nats::jetstream::kv;
use lanmesh_proto::{Name, PeerInfo};
use tokio::sync::watch;

use crate::table::{Route, Snapshot};

pub(crate) use driver::{Start, start};
pub use release::{MeshRelease, release_name};

/// How long a join waits for the bindings bucket before binding the name on this router
/// only.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// How a router joins the others of its mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FederationConfig {
    /// NATS server URLs (`nats://host:port`, `tls://host:port`, user and password in the
    /// URL as async-nats takes them); any of one cluster's servers.
    pub servers: Vec<String>,
    /// How this router is named to the others (default: its key's fingerprint). Shown as
    /// `"router"` by `lanmesh peers --json`.
    pub router_id: Option<String>,
    /// How long a presence entry lives without a refresh (default 10 s; the router
    /// refreshes every third of it). A router that vanishes leaves the others' lists
    /// within about one and a half times this.
    pub ttl: Duration,
    /// Copies JetStream keeps of the buckets (default 1; 3 on a 3-node cluster survives a
    /// node).
    pub replicas: usize,
    /// CA certificates (PEM) the NATS servers' certificates must chain to; set, the
    /// connection must be TLS.
    pub tls_ca: Option<std::path::PathBuf>,
    /// This router's client certificate and key (PEM), for servers that verify clients.
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A NATS `.creds` file (a user JWT and its NKey seed, as `nsc` writes them): how this
    /// router logs in to servers run in operator (JWT) mode.
    pub credentials: Option<std::path::PathBuf>,
    /// A file holding an NKey user seed (`SU…`, as `nk -gen user` writes it): how this
    /// router logs in to servers that list NKey users.
    pub nkey: Option<std::path::PathBuf>,
}

impl FederationConfig {
    /// Joins through these servers, with the defaults.
    pub fn new(servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            router_id: None,
            ttl: Duration::from_secs(10),
            replicas: 1,
            tls_ca: None,
            tls_client: None,
            credentials: None,
            nkey: None,
        }
    }
}

/// Everything `config` says about reaching NATS: the credentials of its URLs (see
/// [`url_login`]), a `.creds` file or an NKey seed, and its TLS files. The files are
/// read and checked here, so a wrong one is an error before anything connects. At most one
/// way of logging in.
pub(crate) fn client_options(
    config: &FederationConfig,
) -> Result<async_nats::ConnectOptions, String> {
    let in_urls = url_login(&config.servers)?;
    let logins = usize::from(in_urls.is_some())
        + usize::from(config.credentials.is_some())
        + usize::from(config.nkey.is_some());
    if logins > 1 {
        return Err(
            "give one NATS login: credentials in the URL, a .creds file or an NKey seed".into(),
        );
    }
    let mut options = options_for(in_urls);
    if let Some(path) = &config.credentials {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        options = options
            .credentials(&text)
            .map_err(|e| format!("{}: not a NATS .creds file: {e}", path.display()))?;
    }
    if let Some(path) = &config.nkey {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let seed = text.trim();
        match nkeys::KeyPair::from_seed(seed) {
            Ok(pair) if pair.key_pair_type() == nkeys::KeyPairType::User => {}
            Ok(_) => return Err(format!("{}: not an NKey user seed (SU…)", path.display())),
            Err(e) => return Err(format!("{}: not an NKey seed: {e}", path.display())),
        }
        options = options.nkey(seed.to_owned());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &config.tls_client {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(options)
}

/// Connection options for `servers`, with the credentials their URLs carry
/// (`nats://USER:PASSWORD@HOST:PORT`, or `nats://TOKEN@HOST:PORT`; percent-encoded as URLs
/// have them): async-nats reads only the address from a URL. All URLs that carry
/// credentials must carry the same.
#[cfg(test)]
fn connect_options(servers: &[String]) -> Result<async_nats::ConnectOptions, String> {
    url_login(servers).map(options_for)
}

/// The user and password (or the token: no password) the URLs carry, if any; URLs that
/// carry different ones are an error.
fn url_login(servers: &[String]) -> Result<Option<(String, Option<String>)>, String> {
    let mut found: Option<(String, Option<String>)> = None;
    for url in servers {
        let addr: async_nats::ServerAddr =
            url.parse().map_err(|e| format!("{}: {e}", redacted(url)))?;
        let Some(user) = addr.username() else {
            continue;
        };
        let these = (percent_decoded(user), addr.password().map(percent_decoded));
        match &found {
            Some(first) if *first != these => {
                return Err("the NATS URLs carry different credentials".into());
            }
            _ => found = Some(these),
        }
    }
    Ok(found)
}

/// Options that log in with what [`url_login`] found.
fn options_for(login: Option<(String, Option<String>)>) -> async_nats::ConnectOptions {
    match login {
        Some((user, Some(password))) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        Some((token, None)) => async_nats::ConnectOptions::with_token(token),
        None => async_nats::ConnectOptions::new(),
    }
}

/// `url` without what its user part says, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// `%XX` escapes of a URL's user part undone (a malformed one is kept as it is).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = text.get(i + 1..i + 3).filter(|_| bytes[i] == b'%');
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The router's members, for the driver: the snapshot to deliver into and who to publish.
#[derive(Debug, Default)]
pub(crate) struct LocalView {
    pub(crate) snapshot: Snapshot,
    pub(crate) members: Vec<PeerInfo>,
}

/// From the driver to the `Router` actor: remote names came or went.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RemoteChanged(pub(crate) Vec<Remote>);

/// From the driver to the `Router` actor: a name's binding was released mesh-wide
/// (`lanmesh names release --federate`): forget it here too, unless a member holds it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MeshReleased(pub(crate) Name);

/// One remote name's change.
#[derive(Debug)]
pub(crate) enum Remote {
    /// Served by another router; frames for it go into `route`.
    Seen {
        info: PeerInfo,
        router: String,
        route: Arc<Route>,
    },
    /// No longer served anywhere else.
    Gone(Name),
}

/// Why the mesh refused a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundElsewhere {
    /// The key the name is bound to in the mesh.
    pub(crate) owner: [u8; 32],
}

/// What the `Router` actor holds of the federation.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) router_id: String,
    /// Where local sessions put broadcasts for the other routers (see `broadcast`).
    pub(crate) broadcast: Arc<Route>,
    view: watch::Sender<Arc<LocalView>>,
    claims: Arc<Claims>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("router_id", &self.router_id)
            .finish_non_exhaustive()
    }
}

/// The bindings bucket, once the driver has it.
#[derive(Default)]
pub(crate) struct Claims {
    store: Mutex<Option<(async_nats::Client, kv::Store)>>,
}

impl Claims {
    fn set(&self, client: async_nats::Client, store: kv::Store) {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = Some((client, store));
    }

    fn get(&self) -> Option<(async_nats::Client, kv::Store)> {
        self.store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Link {
    /// The router's members changed: `snapshot` is the new routing table.
    pub(crate) fn local_changed(&self, snapshot: Snapshot, members: Vec<PeerInfo>) {
        self.view
            .send_replace(Arc::new(LocalView { snapshot, members }));
    }

    /// Binds `name` to `key` mesh-wide, unless another key holds it. Without NATS (not
    /// connected, no answer within [`CLAIM_TIMEOUT`]) the name is bound here only.
    pub(crate) fn claim(
        &self,
        name: Name,
        key: [u8; 32],
    ) -> impl std::future::Future<Output = Result<(), BoundElsewhere>> + 'static {
        let claims = self.claims.clone();
        async move {
            let Some((client, store)) = claims.get() else {
                tracing::info!(peer = %name, "NATS not reached yet: the name is bound on this router for now");
                return Ok(());
            };
            if client.connection_state() != async_nats::connection::State::Connected {
                tracing::warn!(peer = %name, "NATS unreachable: the name is bound on this router for now");
                return Ok(());
            }
            match tokio::time::timeout(CLAIM_TIMEOUT, driver::claim(&store, &name, &key)).await {
                Ok(driver::Claimed::Bound) => Ok(()),
                Ok(driver::Claimed::Elsewhere(e)) => Err(e),
                Ok(driver::Claimed::Unsure(why)) => {
                    // The driver binds it mesh-wide before it announces it.
                    tracing::warn!(peer = %name, %why, "the bindings bucket did not answer: the name is bound on this router for now");
                    Ok(())
                }
                Err(_) => {
                    tracing::warn!(peer = %name, "no answer from the bindings bucket in time: the name is bound on this router for now");
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn credentials_come_from_the_urls_and_must_agree() {
        assert!(connect_options(&urls(&["nats://127.0.0.1:4222"])).is_ok());
        assert!(connect_options(&urls(&["nats://u:p@a:4222", "nats://b:4222"])).is_ok());
        assert!(connect_options(&urls(&["nats://tok@a:4222"])).is_ok());
        let err = connect_options(&urls(&["nats://u:p@a:4222", "nats://u:q@b:4222"]))
            .err()
            .unwrap();
        assert!(err.contains("different credentials"), "{err}");
        assert!(connect_options(&urls(&["nats://u:p@[::1:4222"])).is_err());
        assert_eq!(percent_decoded("p%40ss%3Aw"), "p@ss:w");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(redacted("nats://u:secret@host:4222"), "nats://…@host:4222");
        assert_eq!(redacted("nats://host:4222"), "nats://host:4222");
    }
}
