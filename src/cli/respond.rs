//! `lanmesh respond`: answer every request to a name by running a command — the request's
//! data on its stdin, its stdout the reply — so that a shell one-liner is a service.

use std::process::{ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use lanmesh::{Message, Peer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinSet;

use super::{Connect, RouterWatch};

#[derive(Debug, Args)]
#[command(
    after_help = "For each request, `sh -c CMD` runs with the request's data on its \
standard input and LANMESH_FROM (the requester's name) and LANMESH_ID (the request id) in \
its environment; what it prints on standard output, once it exits with status 0, is the \
reply. Its standard error goes to ours. A command that exits non-zero, cannot start, runs \
longer than --exec-timeout or prints more than a message may hold declines the request: \
the requester gets `peer \"NAME\" answers no requests`, and the reason is printed here. \
Messages that are not requests are printed as `listen` prints them.\n\n\
Example: lanmesh respond --name clock --exec date   then   lanmesh request clock now"
)]
pub(crate) struct RespondArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh: requests to it are answered.
    #[arg(long, value_name = "ME")]
    name: String,
    /// The command that answers a request (run by `sh -c`, see below).
    #[arg(long, value_name = "CMD")]
    exec: String,
    /// Seconds a command may run before it is killed and its request declined.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    exec_timeout: f64,
    /// Commands that may run at once; further requests wait for one to finish.
    #[arg(long, value_name = "N", default_value_t = 4)]
    jobs: usize,
}

pub(crate) async fn run(args: RespondArgs) -> anyhow::Result<ExitCode> {
    super::check_name("--name", &args.name)?;
    let timeout = Duration::try_from_secs_f64(args.exec_timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--exec-timeout must be a positive number of seconds"))?;
    let jobs = args.jobs.max(1);
    let peer = args
        .connect
        .connect(args.connect.builder(Some(&args.name))?)
        .await?;
    let mut requests = peer.request_queue(jobs.max(64));
    RouterWatch::spawn(&peer);
    eprintln!(
        "answering requests to {:?} on {} with `{}`",
        args.name,
        args.connect.describe(),
        args.exec
    );
    let command: Rc<str> = Rc::from(args.exec.as_str());
    let max_reply =
        usize::try_from(lanmesh::proto::Limits::default().max_message).unwrap_or(usize::MAX);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            r = requests.recv(), if running.len() < jobs => {
                let Some(request) = r else { break };
                let (peer, command) = (peer.clone(), command.clone());
                running.spawn_local(answer(peer, request, command, timeout, max_reply));
            }
            m = peer.recv() => match m {
                Ok(m) => super::listen::print_message(&m, false),
                Err(e) => {
                    eprintln!("lanmesh: {}", super::session_ended(&args.name, &e));
                    return Ok(ExitCode::from(1));
                }
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the command for one request and replies with its output, or declines.
async fn answer(peer: Peer, request: Message, command: Rc<str>, timeout: Duration, max: usize) {
    let started = Instant::now();
    match run_command(&command, &request, timeout, max).await {
        Ok(reply) => {
            let len = reply.len();
            match peer.reply(&request, reply).await {
                Ok(_) => tracing::info!(
                    from = %request.from, id = request.id, len, took = ?started.elapsed(),
                    "answered"
                ),
                Err(e) => eprintln!(
                    "lanmesh: cannot reply to request {} from {:?}: {e}",
                    request.id,
                    request.from.as_str()
                ),
            }
        }
        Err(why) => {
            eprintln!(
                "lanmesh: request {} from {:?}: {why}; declined",
                request.id,
                request.from.as_str()
            );
            let _ = peer.decline(&request).await;
        }
    }
}

async fn run_command(
    command: &str,
    request: &Message,
    timeout: Duration,
    max: usize,
) -> Result<Vec<u8>, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("LANMESH_FROM", request.from.as_str())
        .env("LANMESH_ID", request.id.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `sh -c {command}`: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let data = request.data.clone();
    let work = async {
        // A command that does not read its input must not block: a failed write is fine.
        let write = async move {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&data).await;
            }
        };
        let read = async move {
            let mut buf = Vec::new();
            if let Some(out) = stdout {
                out.take(max as u64 + 1).read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let ((), out) = tokio::join!(write, read);
        (out, child.wait().await)
    };
    let (out, status) = match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!("`{command}` did not finish within {timeout:?}"));
        }
    };
    let out = out.map_err(|e| format!("reading the output of `{command}`: {e}"))?;
    let status = status.map_err(|e| format!("waiting for `{command}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{command}` failed ({status})"));
    }
    if out.len() > max {
        return Err(format!("`{command}` printed more than {max} bytes"));
    }
    Ok(out)
}
