//! `fanout-leaf`: serve one replica of one shard.

use std::process::ExitCode;

use clap::Parser;

/// Exit codes: 0 stopped or finished cleanly; 2 could not start, failed, or hit a bug (a
/// panic, reported on stderr); clap's usage errors are 2 as well.
#[tokio::main]
async fn main() -> ExitCode {
    fanout_leaf::cli::init_tracing();
    let args = fanout_leaf::cli::Args::parse();
    // Run on a task so that a panic ends in the documented code, not Rust's 101.
    match tokio::spawn(fanout_leaf::cli::run(args)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("fanout-leaf: {e:#}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
