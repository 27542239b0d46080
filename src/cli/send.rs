//! `lanmesh send`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use lanmesh::proto::NackReason;

use super::Connect;

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh.
    #[arg(long, value_name = "ME")]
    name: String,
    /// Wait until the recipient has the message.
    #[arg(long)]
    ack: bool,
    /// Send this file's bytes instead of MESSAGE.
    #[arg(long, value_name = "PATH", conflicts_with = "message")]
    file: Option<PathBuf>,
    /// The recipient.
    to: String,
    /// The text to send; read from standard input when absent.
    message: Option<String>,
}

pub(crate) async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let (data, text) = match (&args.file, &args.message) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (Bytes::from(bytes), false)
        }
        (None, Some(m)) => (Bytes::from(m.clone().into_bytes()), true),
        (None, None) => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            let text = std::str::from_utf8(&buf).is_ok();
            (Bytes::from(buf), text)
        }
    };
    let peer = args.connect.builder(Some(&args.name))?.connect().await?;
    let len = data.len();
    let started = Instant::now();
    let id = match (args.ack, text) {
        (true, true) => {
            peer.send_text_acked(&args.to, &String::from_utf8_lossy(&data))
                .await
        }
        (true, false) => peer.send_acked(&args.to, data).await,
        (false, true) => {
            peer.send_text(&args.to, &String::from_utf8_lossy(&data))
                .await
        }
        (false, false) => peer.send(&args.to, data).await,
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            peer.close().await;
            eprintln!("lanmesh: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    // Closing waits for the router to handle everything we sent, so a message it could
    // not deliver is reported here even without --ack.
    let report = peer.close().await;
    if let Some(u) = report.undelivered.first() {
        match u.reason {
            NackReason::UnknownPeer => eprintln!("lanmesh: unknown peer {:?}", u.to.as_str()),
            other => eprintln!(
                "lanmesh: message to {:?} not delivered: {other:?}",
                u.to.as_str()
            ),
        }
        return Ok(ExitCode::from(1));
    }
    if args.ack {
        eprintln!(
            "acknowledged by {:?} (id {id}, {len} bytes) in {:.1?}",
            args.to,
            started.elapsed()
        );
    } else {
        eprintln!("sent to {:?} (id {id}, {len} bytes)", args.to);
    }
    Ok(ExitCode::SUCCESS)
}
