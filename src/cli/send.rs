//! `lanmesh send`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use lanmesh::proto::NackReason;

use super::Connect;
use super::progress::{Bar, size};

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh. Runs beside any other process of this user under the same
    /// name (a `listen` or `peer` of it keeps running).
    #[arg(long, value_name = "ME")]
    name: String,
    /// Wait until the recipient has the message.
    #[arg(long)]
    ack: bool,
    /// Send this file, streamed from disk (any size), to a recipient that saves files
    /// (`lanmesh listen --save-dir DIR`); exits 0 once it has confirmed the whole file.
    /// A progress bar is drawn when stderr is a terminal.
    #[arg(long, value_name = "PATH", conflicts_with = "message")]
    file: Option<PathBuf>,
    /// The recipient.
    to: String,
    /// The text to send; read from standard input when absent.
    message: Option<String>,
}

pub(crate) async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    super::check_name("the recipient (TO)", &args.to)?;
    if let Some(path) = &args.file {
        return send_file(&args, path).await;
    }
    let (data, text) = match &args.message {
        Some(m) => (Bytes::from(m.clone().into_bytes()), true),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            let text = std::str::from_utf8(&buf).is_ok();
            (Bytes::from(buf), text)
        }
    };
    let peer = args
        .connect
        // A session of its own beside any other process of this user under the name
        // (a `lanmesh listen --name` of the same name, or other sends): none evicts another.
        .connect(args.connect.builder(Some(&args.name))?.send_only(true))
        .await?;
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

/// `send --file`: stream the file, draw progress, succeed only on the recipient's `Done`.
async fn send_file(args: &SendArgs, path: &Path) -> anyhow::Result<ExitCode> {
    // Fail on an unreadable file before joining the mesh.
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    let peer = args
        .connect
        // A session of its own beside any other process of this user under the name
        // (a `lanmesh listen --name` of the same name, or other sends): none evicts another.
        .connect(args.connect.builder(Some(&args.name))?.send_only(true))
        .await?;
    let label = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut bar = Bar::new(label);
    // SIGINT or SIGTERM ends the transfer (dropping it tells the recipient, which
    // deletes its partial file) and then the connection.
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<&'static str>();
    actix_rt::spawn(async move {
        let _ = stop_tx.send(super::listen::stop_signal().await);
    });
    let result = tokio::select! {
        r = peer.send_file_with_progress(&args.to, path, |p| bar.update(p)) => r,
        signal = stop => {
            bar.finish();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), peer.close()).await;
            eprintln!("lanmesh: {}; the transfer to {:?} is cancelled", signal.unwrap_or("stopped"), args.to);
            return Ok(ExitCode::from(130));
        }
    };
    bar.finish();
    peer.close().await;
    match result {
        Ok(sent) => {
            let secs = sent.elapsed.as_secs_f64();
            let rate = if secs > 0.0 {
                sent.bytes as f64 / secs / 1e6
            } else {
                0.0
            };
            eprintln!(
                "sent {:?} ({}, {} bytes) to {:?} in {:.1?} ({rate:.1} MB/s); the recipient confirmed the whole file",
                sent.name,
                size(sent.bytes),
                sent.bytes,
                args.to,
                sent.elapsed,
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("lanmesh: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
