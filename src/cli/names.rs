//! `lanmesh names list|release NAME`: the router's name bindings, for its operator.
//!
//! Both work on the bindings file in the router's state directory, also while the router
//! runs: `release` appends a `-NAME` line, which the router reads before its next join
//! (see `lanmesh_router::release_binding`). Nothing goes over the network.

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
    },
}

pub(crate) fn run(args: NamesArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.state_dir {
        Some(d) => d,
        None => lanmesh::Home::locate()?.router_dir(),
    };
    match args.action {
        Action::List => {
            for (name, key) in lanmesh_router::list_bindings(&dir)? {
                println!("{:<20} {}", name.as_str(), hex::encode(key));
            }
        }
        Action::Release { name } => {
            let name = Name::new(&name).map_err(|e| anyhow::anyhow!("{name:?}: {e}"))?;
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
        }
    }
    Ok(ExitCode::SUCCESS)
}
