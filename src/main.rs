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
            eprintln!("lanmesh: {e:#}");
            ExitCode::from(1)
        }
    }
}
