//! `fanout-indexer`: bulk-index NDJSON into a fanout cluster.

use std::process::ExitCode;

use clap::Parser;

/// Exit codes (see `cli`): 0 every line indexed everywhere; 1 some lines rejected; 2 a
/// replica stayed down, an input failed, or a bug (a panic, reported on stderr).
#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person; a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = fanout_indexer::cli::Cli::parse();
    // Run on a task so that a panic ends in the documented code, not Rust's 101.
    match tokio::spawn(fanout_indexer::cli::run(args)).await {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            eprintln!("fanout-indexer: {e:#}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
