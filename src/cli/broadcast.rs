//! `lanmesh broadcast`: one message to every other peer of the mesh.

use std::process::ExitCode;

use clap::Args;

use super::Connect;

#[derive(Debug, Args)]
pub(crate) struct BroadcastArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh (default: cli- and the start of this user's key). Runs beside
    /// any other process of this user under the same name.
    #[arg(long, value_name = "ME")]
    name: Option<String>,
    /// The text to send; read from standard input when absent.
    message: Option<String>,
}

pub(crate) async fn run(args: BroadcastArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => super::default_name()?,
    };
    super::check_name("--name", &name)?;
    let (data, text) = super::message_or_stdin(args.message.as_deref())?;
    let peer = args
        .connect
        .connect(args.connect.builder(Some(&name))?.send_only(true))
        .await?;
    let others = peer
        .peers()
        .iter()
        .filter(|p| p.name.as_str() != name)
        .count();
    let len = data.len();
    let sent = if text {
        peer.broadcast_text(&String::from_utf8_lossy(&data)).await
    } else {
        peer.broadcast(data).await
    };
    // Closing waits for the router to have handled the broadcast.
    let report = peer.close().await;
    match sent {
        Ok(id) if report.undelivered.is_empty() => {
            eprintln!("broadcast from {name:?} to {others} other peers (id {id}, {len} bytes)");
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) => {
            let u = &report.undelivered[0];
            eprintln!("lanmesh: {}", super::nack_text(u.reason, u.to.as_str()));
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("lanmesh: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
