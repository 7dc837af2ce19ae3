//! `assay`: the one binary. Serves the platform, migrates the database, checks
//! configuration, verifies the audit log and imports framework packs.
//!
//! Exit codes: 0 success; 1 runtime failure (database unreachable, audit chain broken...);
//! 2 invalid configuration or usage.

mod cli;
mod frameworks;
mod metrics;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: see the note on the dependency in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(cli::run(args))
}
