//! `fanout-cluster`: a local cluster on the demo corpus, in one command.

use std::process::ExitCode;

use clap::Parser;

/// Exit codes: 0 stopped or finished cleanly; 2 could not start, failed, or hit a bug (a
/// panic, reported on stderr); clap's usage errors are 2 as well.
#[tokio::main]
async fn main() -> ExitCode {
    let args = fanout_loadtest::demo::Cli::parse();
    // Run on a task so that a panic ends in the documented code, not Rust's 101.
    match tokio::spawn(fanout_loadtest::demo::main(args)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("fanout-cluster: {e:#}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
