//! `lanmesh discover`: what routers the LAN advertises.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use lanmesh::discovery::{Event, Found, Watcher};

#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    /// Only routers of this mesh.
    #[arg(long, value_name = "NAME")]
    mesh: Option<String>,
    /// Browse on this network interface only.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Seconds to browse.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    timeout: f64,
    /// Print routers appearing and disappearing as they happen, until the timeout.
    #[arg(long)]
    watch: bool,
    /// JSON output (an array, or one object per event with --watch).
    #[arg(long)]
    json: bool,
}

fn found_json(f: &Found) -> serde_json::Value {
    serde_json::json!({
        "instance": f.instance,
        "mesh": f.mesh,
        "addrs": f.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "key": f.key,
        "ws": f.ws_port,
        "standby": f.standby,
    })
}

pub(crate) async fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .map_err(|_| anyhow::anyhow!("--timeout must be a positive number of seconds"))?;
    tokio::task::spawn_blocking(move || browse(args, timeout)).await?
}

fn browse(args: DiscoverArgs, timeout: Duration) -> anyhow::Result<ExitCode> {
    let watcher = Watcher::start(args.interface.as_deref())?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut seen: Vec<Found> = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(event) = watcher.next(left) else {
            break;
        };
        let ms = start.elapsed().as_millis();
        match event {
            Event::Resolved(f) if args.mesh.as_ref().is_none_or(|m| *m == f.mesh) => {
                if args.watch {
                    if args.json {
                        let mut v = found_json(&f);
                        v["event"] = "resolved".into();
                        v["t_ms"] = (ms as u64).into();
                        println!("{v}");
                    } else {
                        println!("{ms:>6} ms  + {} ({}) at {:?}", f.instance, f.mesh, f.addrs);
                    }
                }
                seen.retain(|s| s.instance != f.instance);
                seen.push(f);
            }
            Event::Removed(fullname) if args.watch => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "event": "removed", "fullname": fullname, "t_ms": ms as u64 })
                    );
                } else {
                    println!("{ms:>6} ms  - {fullname}");
                }
            }
            _ => {}
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    if args.watch {
        return Ok(ExitCode::SUCCESS);
    }
    seen.sort_by(|a, b| (&a.mesh, &a.key, &a.instance).cmp(&(&b.mesh, &b.key, &b.instance)));
    if args.json {
        println!(
            "{}",
            serde_json::Value::Array(seen.iter().map(found_json).collect())
        );
    } else if seen.is_empty() {
        let names: Vec<String> = watcher
            .interfaces()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        println!(
            "no lanmesh routers found on {} within {:.1} s",
            names.join(", "),
            timeout.as_secs_f32()
        );
    } else {
        for f in &seen {
            let addrs: Vec<String> = f.addrs.iter().map(|a| a.to_string()).collect();
            println!(
                "{:<20} mesh {:<16} key {:<16} {}",
                f.instance,
                f.mesh,
                &f.key[..f.key.len().min(16)],
                addrs.join(" ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
