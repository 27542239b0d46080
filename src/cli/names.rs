//! `lanmesh names list|release NAME`: the router's name bindings, for its operator.
//!
//! Both work on the bindings file in the router's state directory, also while the router
//! runs: `release` appends a `-NAME` line, which the router reads before its next join
//! (see `lanmesh_router::release_binding`). A federated router's names are bound
//! mesh-wide too: `release --federate nats://..` first releases the name in the mesh's
//! bindings bucket (refused while any router serves it), and every router then forgets
//! it (see `lanmesh_router::federation::release_name`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use lanmesh::proto::Name;
use lanmesh::proto::handshake::fingerprint;

#[derive(Debug, Args)]
pub(crate) struct NamesArgs {
    /// The router's state directory (default: router/ in the state directory, see
    /// LANMESH_HOME), as given to `lanmesh router --state-dir`.
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print every bound name and the key that holds it.
    List,
    /// Free a name: the next key to join under it binds it. A peer connected under it
    /// stays until it leaves; names pinned by `--allow` stay pinned (edit that file).
    Release {
        /// The name to free.
        name: String,
        /// The router is federated: release the name in the whole mesh, through these
        /// NATS servers (what the router's --federate says).
        #[cfg(feature = "federation")]
        #[arg(long, value_name = "nats://HOST:PORT[,...]", value_delimiter = ',')]
        federate: Vec<String>,
        /// The router's mesh (with --federate).
        #[cfg(feature = "federation")]
        #[arg(long, value_name = "NAME", default_value = lanmesh_router::DEFAULT_MESH)]
        mesh: String,
        /// How to log in to NATS (what the router's options say).
        #[cfg(feature = "federation")]
        #[command(flatten)]
        nats: super::nats::NatsArgs,
    },
}

pub(crate) async fn run(args: NamesArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.state_dir {
        Some(d) => d,
        None => lanmesh::Home::locate()?.router_dir(),
    };
    let name = match args.action {
        Action::List => {
            for (name, key) in lanmesh_router::list_bindings(&dir)? {
                println!("{:<20} {}", name.as_str(), hex::encode(key));
            }
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(feature = "federation")]
        Action::Release {
            name,
            federate,
            mesh,
            nats,
        } => {
            let name = Name::new(&name).map_err(|e| anyhow::anyhow!("{name:?}: {e}"))?;
            if !federate.is_empty() {
                let in_mesh = match release_in_mesh(&federate, &nats, &mesh, &name).await? {
                    Ok(released) => released,
                    Err(code) => return Ok(code),
                };
                // The router's own file may not bind it at all (another router did).
                let here = lanmesh_router::release_binding(&dir, &name)?;
                if let Some(key) = here {
                    println!(
                        "released {:?} here (it was bound to key {})",
                        name.as_str(),
                        fingerprint(&key)
                    );
                }
                return Ok(if in_mesh || here.is_some() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "{:?} is not bound in {} either",
                        name.as_str(),
                        dir.display()
                    );
                    ExitCode::FAILURE
                });
            }
            name
        }
        #[cfg(not(feature = "federation"))]
        Action::Release { name } => {
            Name::new(&name).map_err(|e| anyhow::anyhow!("{name:?}: {e}"))?
        }
    };
    match lanmesh_router::release_binding(&dir, &name)? {
        Some(key) => println!(
            "released {:?} (it was bound to key {})",
            name.as_str(),
            fingerprint(&key)
        ),
        None => {
            eprintln!("{:?} is not bound in {}", name.as_str(), dir.display());
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Releases `name` in the mesh's bindings bucket: whether it was bound there, or the
/// exit code after saying why it is not released.
#[cfg(feature = "federation")]
async fn release_in_mesh(
    servers: &[String],
    nats: &super::nats::NatsArgs,
    mesh: &str,
    name: &Name,
) -> anyhow::Result<Result<bool, ExitCode>> {
    use lanmesh_router::federation::{MeshRelease, release_name};
    let mut config = lanmesh_router::FederationConfig::new(servers.iter().cloned());
    nats.apply(&mut config);
    match release_name(&config, mesh, name).await? {
        MeshRelease::Released { key } => {
            println!(
                "released {:?} in mesh {mesh:?} (it was bound to key {})",
                name.as_str(),
                fingerprint(&key)
            );
            Ok(Ok(true))
        }
        MeshRelease::NotBound => {
            println!("{:?} is not bound in mesh {mesh:?}", name.as_str());
            Ok(Ok(false))
        }
        MeshRelease::InUse { router } => {
            eprintln!(
                "{:?} is in use at router {router}: release it once its peer has left",
                name.as_str()
            );
            Ok(Err(ExitCode::FAILURE))
        }
        MeshRelease::Changed => {
            eprintln!(
                "{:?} was claimed again while it was being released; nothing was removed",
                name.as_str()
            );
            Ok(Err(ExitCode::FAILURE))
        }
        _ => anyhow::bail!("unexpected answer from the mesh"),
    }
}
