//! The `lanmesh` command line.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![allow(clippy::print_stdout)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args);
    let system = actix_rt::System::new();
    match system.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lanmesh: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once: a cause that an outer error
/// already quotes (`cannot listen on X: Address in use` caused by `Address in use`) is not
/// repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
