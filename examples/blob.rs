//! Sending a file with progress: streamed from disk in acknowledged chunks, written to the
//! recipient's save directory, never held whole in memory (tinyproto's 4 GiB blobs,
//! serpy2's images).
//!
//! ```text
//! cargo run --example blob -- PATH                       # a router and a recipient of its own, on loopback
//! LANMESH_ROUTER=192.168.1.10:7400 LANMESH_TO=nas cargo run --example blob -- PATH
//!                                                        # to `lanmesh listen --name nas --save-dir DIR`
//! ```
//! Without PATH it makes and sends 32 MiB of noise.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

pub(crate) fn main() -> anyhow::Result<()> {
    run(std::env::args_os().nth(1).map(PathBuf::from))
}

pub(crate) fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    actix_rt::System::new().block_on(send(path))
}

async fn send(path: Option<PathBuf>) -> anyhow::Result<()> {
    // Loopback only unless a router address is given: this example never touches the LAN.
    let own;
    let at = match std::env::var("LANMESH_ROUTER").ok() {
        Some(addr) => addr,
        None => {
            own = lanmesh::Router::builder()
                .listen("127.0.0.1:0")
                .mdns(false)
                .start()
                .await?;
            own.local_addrs()[0].to_string()
        }
    };
    let scratch = std::env::temp_dir().join(format!("lanmesh-example-blob-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    // The recipient: a peer that saves files (what `lanmesh listen --save-dir` does).
    let (to, inbox) = match std::env::var("LANMESH_TO").ok() {
        Some(name) => (name, None),
        None => {
            let dir = scratch.join("inbox");
            std::fs::create_dir_all(&dir)?;
            let inbox = lanmesh::Peer::builder("inbox")
                .router(at.clone())
                .save_dir(dir)
                .connect()
                .await?;
            ("inbox".to_owned(), Some(inbox))
        }
    };
    let path = match path {
        Some(p) => p,
        None => {
            let p = scratch.join("noise.bin");
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            let bytes: Vec<u8> = (0..32 << 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(&p, bytes)?;
            p
        }
    };

    let laptop = lanmesh::Peer::builder("laptop")
        .router(at)
        .connect()
        .await?;
    let started = Instant::now();
    let mut shown = 0;
    let sent = laptop
        .send_file_with_progress(&to, &path, |p| {
            // `acked` is what the recipient has on disk; print every 10 %.
            let percent = (p.acked * 100).checked_div(p.total).unwrap_or(100);
            if percent >= shown {
                print!("\r{} {percent:>3}% of {} bytes", p.sent, p.total);
                let _ = std::io::stdout().flush();
                shown = percent + 10;
            }
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\n{to} confirmed {:?}: {} bytes in {secs:.2} s ({:.1} MB/s)",
        sent.name,
        sent.bytes,
        sent.bytes as f64 / secs / 1e6
    );

    if let Some(inbox) = inbox {
        // The recipient's application learns of the file as a message.
        let msg = inbox.recv().await?;
        let file = msg.file().expect("a file notice");
        println!("{} saved it as {}", msg.from, file.path.display());
        anyhow::ensure!(
            std::fs::metadata(&file.path)?.len() == std::fs::metadata(&path)?.len(),
            "sizes differ"
        );
        inbox.close().await;
    }
    laptop.close().await;
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
