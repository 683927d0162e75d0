//! `fanout-root`: serve the HTTP search API over a cluster of leaves.

use std::process::ExitCode;

use clap::Parser;

/// Exit codes: 0 stopped or finished cleanly; 2 could not start, failed, or hit a bug (a
/// panic, reported on stderr); clap's usage errors are 2 as well.
#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person; a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = fanout_root::cli::Args::parse();
    // Run on a task so that a panic ends in the documented code, not Rust's 101.
    match tokio::spawn(fanout_root::cli::run(args)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("fanout-root: {e:#}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
