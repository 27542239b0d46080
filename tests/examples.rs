//! The examples run as they are: each file is included here and its `main` executed
//! (on loopback only).

#[path = "../examples/request_reply.rs"]
mod request_reply;

#[path = "../examples/quickstart.rs"]
mod quickstart;

#[test]
fn the_request_reply_example_runs() {
    request_reply::main().expect("request_reply example");
}

#[test]
fn the_quickstart_example_runs() {
    quickstart::main().expect("quickstart example");
}

#[path = "../examples/blob.rs"]
#[allow(dead_code)] // its `main` reads the command line; the test calls `run`.
mod blob;

#[test]
fn the_blob_example_runs() {
    blob::run(None).expect("blob example");
}
