//! Releasing a name mesh-wide (`lanmesh names release NAME --federate URL`): the binding
//! in the bindings bucket goes, so that another key may claim the name at any router.
//!
//! 1. [`release_name`] reads the binding (its key and revision). None: nothing to do.
//! 2. A presence entry for the name means a router serves it now: refused
//!    ([`MeshRelease::InUse`]), as a name is never taken from under a connected peer.
//! 3. The binding is deleted only at the revision read in step 1
//!    (`delete_expect_revision`): had anything rewritten it since (released and claimed
//!    again by another key), the delete fails and nothing is lost
//!    ([`MeshRelease::Changed`]).
//! 4. Every router watches the bindings bucket ([`watch`]): a released name is forgotten
//!    in its own bindings file too (unless a member holds it there, or `--allow` pins it),
//!    so the next key to join under it anywhere binds it.
//!
//! What is not atomic: the presence check and the delete are two buckets. A router that
//! bound the name just before step 1 and puts its presence only after step 2 would find
//! its binding gone; the driver checks the binding again after it put the presence and
//! binds the name anew (see `driver::announce`), so the name ends bound to its holder
//! unless another key claimed it in between.

use std::time::Duration;

use actix::Addr;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use lanmesh_proto::Name;
use tracing::debug;

use super::wire::{self, Presence};
use super::{FederationConfig, MeshReleased};
use crate::RouterError;
use crate::router::Router;

/// How long `release_name` waits for NATS at each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`release_name`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshRelease {
    /// The binding to this key is gone.
    Released {
        /// The key the name was bound to.
        key: [u8; 32],
    },
    /// The mesh has no binding for the name.
    NotBound,
    /// A router serves the name now: released once its peer is gone.
    InUse {
        /// The router serving it.
        router: String,
    },
    /// The binding changed while it was being released (claimed again): nothing was
    /// removed; try again.
    Changed,
}

fn nats_error(what: &str, e: impl std::fmt::Display) -> RouterError {
    RouterError::Federation(format!("{what}: {e}"))
}

async fn step<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, RouterError> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(nats_error(what, e)),
        Err(_) => Err(nats_error(what, "no answer in time")),
    }
}

/// Releases `name`'s binding in mesh `mesh`, through the NATS servers of `config` (see
/// the module's steps). Needs no router: it talks to NATS only.
pub async fn release_name(
    config: &FederationConfig,
    mesh: &str,
    name: &Name,
) -> Result<MeshRelease, RouterError> {
    let servers = config.servers.join(",");
    let client = step(
        "cannot connect to NATS",
        super::client_options(config)
            .map_err(|e| nats_error("bad NATS options", e))?
            .name("lanmesh names release")
            .connect(servers.as_str()),
    )
    .await?;
    let js = jetstream::new(client.clone());
    let bucket = wire::bindings_bucket(mesh);
    let bindings = step(
        &format!("cannot open the bindings bucket {bucket} (is the mesh federated?)"),
        js.get_key_value(bucket.clone()),
    )
    .await?;
    let key = wire::escape(name.as_str());
    let entry = step("cannot read the binding", bindings.entry(key.clone())).await?;
    let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
        return Ok(MeshRelease::NotBound);
    };
    let owner = wire::decode_binding(&entry.value)
        .ok_or_else(|| nats_error("the binding is not a key", &key))?;
    // Served somewhere now? (No presence bucket: no router ever announced anything.)
    if let Ok(presence) = js.get_key_value(wire::presence_bucket(mesh)).await {
        let held = step("cannot read the presence", presence.entry(key.clone())).await?;
        if let Some(p) = held
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| Presence::decode(&key, &e.value).ok())
        {
            return Ok(MeshRelease::InUse { router: p.router });
        }
    }
    let deleted = tokio::time::timeout(
        STEP_TIMEOUT,
        bindings.delete_expect_revision(&key, Some(entry.revision)),
    )
    .await;
    let result = match deleted {
        Ok(Ok(())) => MeshRelease::Released { key: owner },
        // Refused at that revision, or no answer: what is there now says which.
        _ => match step("cannot read the binding", bindings.entry(key.clone())).await? {
            Some(now) if now.revision != entry.revision && now.operation == kv::Operation::Put => {
                MeshRelease::Changed
            }
            Some(now) if now.operation != kv::Operation::Put => {
                MeshRelease::Released { key: owner }
            }
            _ => return Err(nats_error("the binding was not removed", &key)),
        },
    };
    let _ = client.flush().await;
    Ok(result)
}

/// Tells the router of every name released in the mesh (a delete in the bindings
/// bucket), from the bucket's current state on: a router that was away hears of the
/// releases it missed when it comes back.
pub(crate) async fn watch(store: kv::Store, router: Addr<Router>) {
    loop {
        match store.watch_with_history(">").await {
            Ok(mut w) => {
                while let Some(entry) = w.next().await {
                    let Ok(entry) = entry else { break };
                    if entry.operation == kv::Operation::Put {
                        continue;
                    }
                    if let Some(name) = wire::unescape(&entry.key).and_then(|n| Name::new(&n).ok())
                    {
                        router.do_send(MeshReleased(name));
                    }
                }
            }
            Err(e) => debug!(error = %e, "cannot watch the bindings bucket yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
