//! `lanmesh listen`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;

use super::Connect;

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh.
    #[arg(long, value_name = "ME")]
    name: String,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// One JSON object per line: {"from","id","data"} (+ "encoding":"base64" for binary);
    /// {"from","file","bytes","path"} for a received file.
    #[arg(long)]
    json: bool,
    /// Accept files (`lanmesh send --file`) and save them in DIR (created if missing);
    /// without it, senders of files get an error.
    #[arg(long, value_name = "DIR")]
    save_dir: Option<PathBuf>,
}

pub(crate) async fn run(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let mut builder = args.connect.builder(Some(&args.name))?;
    if let Some(dir) = &args.save_dir {
        builder = builder.save_dir(writable_dir(dir)?);
    }
    let peer = args.connect.connect(builder).await?;
    super::RouterWatch::spawn(&peer);
    eprintln!(
        "listening as {:?} on {}",
        args.name,
        args.connect.describe()
    );
    // SIGINT or SIGTERM: the senders of files in progress are told and the partial
    // files deleted, rather than left behind for a sender that waits out its deadline.
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<&'static str>();
    actix_rt::spawn(async move {
        let _ = stop_tx.send(stop_signal().await);
    });
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        let received = tokio::select! {
            r = peer.recv() => r,
            signal = &mut stop => {
                let _ = tokio::time::timeout(CLOSE_ON_SIGNAL, peer.close()).await;
                let removed = lanmesh::remove_partial_files();
                if removed > 0 {
                    eprintln!("lanmesh: {}; deleted {removed} partial file(s)", signal.unwrap_or("stopped"));
                }
                return Ok(ExitCode::from(130));
            }
        };
        let m = match received {
            Ok(m) => m,
            Err(e) => {
                eprintln!("lanmesh: {}", super::session_ended(&args.name, &e));
                return Ok(ExitCode::from(1));
            }
        };
        match m.file() {
            Some(file) => print_file(&m, &file, args.json),
            None => print_message(&m, args.json),
        }
        seen += 1;
    }
    peer.close().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM, named.
pub(crate) async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "interrupted"
}

/// How long a listener stopped by a signal waits for its goodbyes to leave.
const CLOSE_ON_SIGNAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `dir`, created if missing, absolute (so the paths printed for received files are
/// usable anywhere), once a file could be created in it: a listener that could not save
/// anything says so at start, not to its first sender.
fn writable_dir(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the save directory {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let probe = dir.join(format!(".lanmesh-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(dir)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot save files in {}: {e}",
            dir.display()
        )),
    }
}

/// Prints one received message, as text when it is UTF-8.
pub(crate) fn print_message(m: &lanmesh::Message, json: bool) {
    let text = std::str::from_utf8(&m.data).ok();
    let line = if json {
        let mut obj = serde_json::json!({ "from": m.from.as_str(), "id": m.id });
        match text {
            Some(t) => obj["data"] = t.into(),
            None => {
                obj["data"] = base64::engine::general_purpose::STANDARD
                    .encode(&m.data)
                    .into();
                obj["encoding"] = "base64".into();
            }
        }
        obj.to_string()
    } else {
        match text {
            Some(t) => format!("{}: {t}", m.from),
            None => format!("{}: <{} bytes of binary data>", m.from, m.data.len()),
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one completed incoming file.
fn print_file(m: &lanmesh::Message, f: &lanmesh::ReceivedFile, json: bool) {
    let line = if json {
        serde_json::json!({
            "from": m.from.as_str(),
            "file": f.file,
            "bytes": f.bytes,
            "path": f.path.to_string_lossy(),
        })
        .to_string()
    } else {
        format!(
            "{}: file {:?} ({} bytes) saved as {}",
            m.from,
            f.file,
            f.bytes,
            f.path.display()
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
