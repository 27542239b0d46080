//! File transfers cut short, through the CLI as a user runs it: a listener interrupted
//! mid-file (SIGINT, SIGTERM), a sender interrupted mid-file, and a save directory the
//! listener cannot write.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::proc::{Proc, router_with};

/// A scratch directory, removed when dropped (each test writes a 256 MiB file in it).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(what: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("lanmesh-interrupt-{}-{what}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// A file of `mib` MiB that does not compress (so it takes a while to move).
fn big_file(dir: &Path, mib: usize) -> PathBuf {
    let path = dir.join("big.bin");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..mib {
        std::io::Write::write_all(&mut f, &common::noise(i as u64 + 1, 1 << 20)).unwrap();
    }
    path
}

fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

fn signal(p: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Polls until `cond` holds, for at most `limit`.
fn within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A sender and a listener mid-transfer: returns them once the listener's partial file
/// has grown.
fn mid_transfer(tcp: &str, save: &Path, file: &Path, receiver: &str) -> (Proc, Proc) {
    let listener = Proc::spawn(&[
        "listen",
        "--router",
        tcp,
        "--name",
        receiver,
        "--save-dir",
        save.to_str().unwrap(),
    ]);
    listener.wait_stderr("listening as");
    let sender = Proc::spawn(&[
        "send",
        "--router",
        tcp,
        "--name",
        "A",
        "--file",
        file.to_str().unwrap(),
        receiver,
    ]);
    within(Duration::from_secs(20), "a partial file that grows", || {
        partial_files(save)
            .iter()
            .any(|n| std::fs::metadata(save.join(n)).is_ok_and(|m| m.len() > 0))
    });
    (listener, sender)
}

/// Everything `p` wrote on stderr. Called once it has exited: its reader thread hands
/// over the last lines and then ends at the end of the pipe, which ends the wait.
fn stderr_of(p: &Proc) -> String {
    let mut lines = Vec::new();
    while let Ok(line) = p.stderr.recv_timeout(Duration::from_secs(5)) {
        lines.push(line);
    }
    lines.join("\n")
}

#[test]
fn an_interrupted_listener_deletes_its_partial_file_and_the_sender_is_told_at_once() {
    let (_router, tcp, _) = router_with(&["--http", "127.0.0.1:0"]);
    let work = scratch("listener");
    let file = big_file(&work, 256);
    for (sig, receiver) in [("-INT", "nas5"), ("-TERM", "nas6")] {
        let save = work.join(format!("save-{receiver}"));
        let (mut listener, mut sender) = mid_transfer(&tcp, &save, &file, receiver);
        signal(&listener, sig);
        within(Duration::from_secs(3), "the listener to exit", || {
            listener.child.try_wait().unwrap().is_some()
        });
        assert_eq!(partial_files(&save), Vec::<String>::new(), "after {sig}");
        // The sender learns at once (not after the 30 s grace), and in those words.
        within(Duration::from_secs(3), "the sender to exit", || {
            sender.child.try_wait().unwrap().is_some()
        });
        let status = sender.child.try_wait().unwrap().unwrap();
        assert!(!status.success());
        let err = stderr_of(&sender);
        assert!(
            err.contains(&format!("{receiver:?} went away during the transfer")),
            "{err}"
        );
        assert!(!err.contains("unknown peer"), "{err}");
    }
}

#[test]
fn an_interrupted_sender_leaves_no_partial_file_at_the_listener() {
    let (_router, tcp, _) = router_with(&["--http", "127.0.0.1:0"]);
    let work = scratch("sender");
    let file = big_file(&work, 256);
    let save = work.join("save");
    let (listener, mut sender) = mid_transfer(&tcp, &save, &file, "nas7");
    signal(&sender, "-INT");
    within(Duration::from_secs(3), "the sender to exit", || {
        sender.child.try_wait().unwrap().is_some()
    });
    within(Duration::from_secs(3), "the partial file to go", || {
        partial_files(&save).is_empty()
    });
    // The listener keeps listening.
    let o = std::process::Command::new(common::proc::BIN)
        .args([
            "send",
            "--router",
            &tcp,
            "--name",
            "A",
            "--ack",
            "nas7",
            "still there?",
        ])
        .env("LANMESH_HOME", common::proc::test_home())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    listener.wait_stdout("still there?");
}

#[test]
fn a_save_dir_that_cannot_be_written_fails_the_listener_at_start() {
    let (_router, tcp, _) = router_with(&["--http", "127.0.0.1:0"]);
    // /proc takes no new files, even from root (which ignores permission bits).
    let o = std::process::Command::new(common::proc::BIN)
        .args([
            "listen",
            "--router",
            &tcp,
            "--name",
            "L",
            "--save-dir",
            "/proc",
        ])
        .env("LANMESH_HOME", common::proc::test_home())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("lanmesh: cannot save files in /proc: "),
        "{err}"
    );
}
