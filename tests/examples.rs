//! The examples run as they are: each file is included here and its `main` executed
//! (on loopback only). The chat example, which reads standard input, runs as two
//! processes of this very test binary (see `chat_process`).
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../examples/request_reply.rs"]
mod request_reply;

#[path = "../examples/quickstart.rs"]
mod quickstart;

#[path = "../examples/hooks.rs"]
mod hooks;

#[path = "../examples/chat.rs"]
mod chat;

use std::io::Write;
use std::process::{ChildStdin, Command};

use common::proc::Proc;

#[test]
fn the_request_reply_example_runs() {
    request_reply::main().expect("request_reply example");
}

#[test]
fn the_quickstart_example_runs() {
    quickstart::main().expect("quickstart example");
}

#[actix_rt::test]
async fn the_hooks_example_runs() {
    // The example checks every step itself (welcome, echo, reply, NoResponder, ticks,
    // goodbye, the router's guest book) and fails if one does not happen in time.
    hooks::demo().await.expect("hooks example");
}

/// The chat example as a process of its own: the chat test starts this test binary again
/// with only this test selected and `LANMESH_CHAT_NAME` set, and pipes its standard input.
#[test]
#[ignore = "started by the_chat_example_talks_between_two_processes"]
fn chat_process() {
    if let Ok(name) = std::env::var("LANMESH_CHAT_NAME") {
        actix_rt::System::new()
            .block_on(chat::chat(&name))
            .expect("chat example");
    }
}

struct Chat {
    proc: Proc,
    input: Option<ChildStdin>,
}

impl Chat {
    fn start(name: &str, router: &str) -> Chat {
        let exe = std::env::current_exe().unwrap();
        let (proc, input) = Proc::spawn_with_stdin(
            Command::new(exe)
                .args(["chat_process", "--exact", "--ignored", "--nocapture"])
                .env("LANMESH_CHAT_NAME", name)
                .env("LANMESH_ROUTER", router),
        );
        Chat {
            proc,
            input: Some(input),
        }
    }

    fn say(&mut self, line: &str) {
        let input = self.input.as_mut().unwrap();
        writeln!(input, "{line}").unwrap();
        input.flush().unwrap();
    }

    fn expect(&self, line: &str) {
        self.proc.wait_stdout(line);
    }
}

#[test]
fn the_chat_example_talks_between_two_processes() {
    let router = Proc::spawn(&[
        "router",
        "--no-mdns",
        "--no-http",
        "--listen",
        "127.0.0.1:0",
    ]);
    router.wait_stdout("lanmesh router");
    let tcp = router.line();
    let at = tcp.trim().strip_prefix("tcp").unwrap().trim().to_owned();

    let mut alice = Chat::start("alice", &at);
    alice.expect("joined as alice; here: ");
    let mut bob = Chat::start("bob", &at);
    bob.expect("joined as bob; here: alice");
    alice.expect("* bob joined");

    bob.say("@alice hi alice");
    alice.expect("bob: hi alice");
    alice.say("hello everyone");
    bob.expect("alice (to all): hello everyone");
    bob.say("@nobody are you there?");
    bob.expect("* not sent: unknown peer \"nobody\"");
    bob.say("/peers");
    bob.expect("* peers: alice, bob");

    // End of input leaves the mesh; the other side sees it.
    bob.input.take();
    alice.expect("* bob left");
    assert!(bob.proc.wait().success(), "bob exits 0 at the end of input");
    alice.say("/quit");
    assert!(alice.proc.wait().success(), "alice exits 0 on /quit");
}

#[path = "../examples/blob.rs"]
#[allow(dead_code)] // its `main` reads the command line; the test calls `run`.
mod blob;

#[test]
fn the_blob_example_runs() {
    blob::run(None).expect("blob example");
}
