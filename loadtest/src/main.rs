//! `fanout-loadtest`: query latency against a fanout root, next to one in-process tantivy index.

use std::path::PathBuf;

use clap::Parser;
use fanout_loadtest::latency;

/// Measures query latency (closed loop, one query at a time) against a root, and optionally
/// against one in-process tantivy index holding the same corpus, in the same run.
#[derive(Debug, Parser)]
#[command(name = "fanout-loadtest", version)]
struct Args {
    /// The root's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Queries: JSON lines with a `query` field, or plain text lines.
    #[arg(long)]
    queries: PathBuf,
    /// Queries to measure (the file is cycled).
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Unmeasured queries first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// Also run the queries on one in-process index built from this corpus.
    #[arg(long)]
    direct_corpus: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("fanout-loadtest: {e:#}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let queries = latency::load_queries(&args.queries)?;
    let mut reports = Vec::new();
    if let Some(corpus) = &args.direct_corpus {
        eprintln!(
            "building the direct baseline index from {} ...",
            corpus.display()
        );
        let index = latency::build_direct_index(corpus)?;
        reports.push(latency::measure_direct(
            &index,
            &queries,
            args.count,
            args.warmup,
            args.size,
        ));
    }
    reports.push(
        latency::measure_root(&args.url, &queries, args.count, args.warmup, args.size).await?,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", latency::table(&reports));
    }
    Ok(())
}
