//! `lanmesh listen`.

use std::io::Write as _;
use std::process::ExitCode;

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
    /// One JSON object per line: {"from","id","data"} (+ "encoding":"base64" for binary).
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let peer = args.connect.builder(Some(&args.name))?.connect().await?;
    eprintln!(
        "listening as {:?} on {}",
        args.name,
        args.connect.describe()
    );
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        let m = match peer.recv().await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("lanmesh: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        print_message(&m, args.json);
        seen += 1;
    }
    peer.close().await;
    Ok(ExitCode::SUCCESS)
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
