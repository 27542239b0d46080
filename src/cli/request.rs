//! `lanmesh request`: ask a peer, print its reply.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::Connect;

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh (default: cli- and the start of this user's key). Runs beside
    /// any other process of this user under the same name; the reply comes back to this
    /// one.
    #[arg(long, value_name = "ME")]
    name: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    timeout: f64,
    /// Print the reply as one JSON object {"from","id","data"} (+ "encoding":"base64"
    /// for binary) instead of its bare bytes.
    #[arg(long)]
    json: bool,
    /// The peer to ask (one that answers requests, e.g. `lanmesh respond`).
    to: String,
    /// The request's text; read from standard input when absent.
    message: Option<String>,
}

pub(crate) async fn run(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--timeout must be a positive number of seconds"))?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => super::default_name()?,
    };
    super::check_name("--name", &name)?;
    super::check_name("the recipient (TO)", &args.to)?;
    let (data, text) = super::message_or_stdin(args.message.as_deref())?;
    let peer = args
        .connect
        .connect(args.connect.builder(Some(&name))?.send_only(true))
        .await?;
    let reply = if text {
        peer.request_text(&args.to, &String::from_utf8_lossy(&data), timeout)
            .await
    } else {
        peer.request(&args.to, data, timeout).await
    };
    peer.close().await;
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lanmesh: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let obj = super::jsonl::message(&reply);
        writeln!(out, "{}", serde_json::Value::Object(obj))?;
    } else {
        out.write_all(&reply.data)?;
        // Text gets its line ended; binary data is written exactly as it came.
        if std::str::from_utf8(&reply.data).is_ok() && !reply.data.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
