//! The `fanout-leaf` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use fanout_proto::ShardId;

use crate::index::{ShardIndex, WriterOptions};
use crate::refresh::RefreshPolicy;
use crate::schema::SchemaConfig;
use crate::seed::SeedGate;
use crate::service::LeafService;

/// Serves one replica of one shard over gRPC (fanout.v1.Leaf and grpc.health.v1).
#[derive(Debug, Clone, Parser)]
#[command(name = "fanout-leaf", version)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port. Once bound, the leaf prints
    /// `listening on ADDR` as the first line of standard output.
    #[arg(long, env = "FANOUT_LEAF_LISTEN", default_value = "127.0.0.1:7000")]
    pub listen: String,
    /// Directory of this replica's index; created if missing.
    #[arg(long, env = "FANOUT_LEAF_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The shard this replica serves.
    #[arg(long, env = "FANOUT_LEAF_SHARD")]
    pub shard: ShardId,
    /// This replica's name in responses and logs (default: the listen address).
    #[arg(long, env = "FANOUT_LEAF_REPLICA")]
    pub replica: Option<String>,
    /// Schema file (TOML); the built-in schema fits {id, title, body, author, date} documents.
    #[arg(long, env = "FANOUT_LEAF_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Indexing threads, 1 to 64.
    #[arg(long, env = "FANOUT_LEAF_WRITER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writer_threads: u32,
    /// Searches run at once; more wait (and are skipped if cancelled while waiting).
    /// Default: the number of CPUs.
    #[arg(long, env = "FANOUT_LEAF_MAX_CONCURRENT_SEARCHES", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_searches: Option<u32>,
    /// Searches that may wait for a slot; one more is refused at once as busy
    /// (RESOURCE_EXHAUSTED), and a root asks another replica. Default: 16 per slot.
    #[arg(long, env = "FANOUT_LEAF_MAX_QUEUED_SEARCHES")]
    pub max_queued_searches: Option<u32>,
    /// Memory budget of the index writer, in MiB, shared by its threads: at least 15 per
    /// thread.
    #[arg(long, env = "FANOUT_LEAF_WRITER_MEMORY_MB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(15..))]
    pub writer_memory_mb: u32,
    /// Longest time an acknowledged write waits to become searchable: the leaf commits this
    /// often while there are new writes (`500ms`, `1s`, `1m`). Writes are durable on
    /// acknowledgement either way, through the write-ahead log.
    #[arg(long, env = "FANOUT_LEAF_REFRESH_INTERVAL", default_value = "1s", value_parser = fanout_proto::args::parse_duration)]
    pub refresh_interval: std::time::Duration,
    /// Commit early once this much write-ahead log built up since the last commit, in MiB; it
    /// bounds the replay after a crash.
    #[arg(long, env = "FANOUT_LEAF_MAX_UNCOMMITTED_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_uncommitted_mb: u64,
    /// On SIGTERM, keep serving this long with gRPC health NOT_SERVING before refusing new
    /// connections, so that roots stop choosing this replica first (`5s`; default 0).
    #[arg(long, env = "FANOUT_LEAF_SHUTDOWN_DELAY", default_value = "0s", value_parser = fanout_proto::args::parse_duration)]
    pub shutdown_delay: std::time::Duration,
    /// Report NOT_SERVING until an import has filled this replica (the indexer's closing
    /// Commit), so that a new, empty replica takes no queries; remembered in the data
    /// directory.
    #[arg(long, env = "FANOUT_LEAF_AWAIT_SEED")]
    pub await_seed: bool,
    /// Limits on what one query may ask, shared with the root.
    #[command(flatten)]
    pub query: fanout_proto::query::QueryLimitArgs,
}

/// Opens the index, binds, prints the bound address and serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let schema = match &args.schema {
        Some(path) => SchemaConfig::load(path)?,
        None => SchemaConfig::default(),
    };
    if args.writer_memory_mb < 15 * args.writer_threads {
        anyhow::bail!(
            "--writer-memory-mb ({}) must be at least 15 per writer thread ({} for --writer-threads {})",
            args.writer_memory_mb,
            15 * args.writer_threads,
            args.writer_threads
        );
    }
    let writer = WriterOptions {
        threads: args.writer_threads as usize,
        memory_bytes: (args.writer_memory_mb as usize) << 20,
    };
    let data_dir = args.data_dir.clone();
    let shard = args.shard;
    let limits = args.query.limits();
    let index = tokio::task::spawn_blocking(move || {
        let mut index = ShardIndex::open_or_create(&data_dir, shard, schema, &writer)?;
        index.set_query_limits(limits);
        anyhow::Ok(index)
    })
    .await??;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let replica = args.replica.clone().unwrap_or_else(|| addr.to_string());
    let leaf = match args.max_concurrent_searches {
        Some(slots) => LeafService::with_search_slots(index, replica.clone(), slots as usize),
        None => LeafService::new(index, replica.clone()),
    }
    .with_refresh(RefreshPolicy {
        interval: args.refresh_interval,
        max_log_bytes: args.max_uncommitted_mb << 20,
    })
    .with_shutdown_delay(args.shutdown_delay);
    let leaf = match args.max_queued_searches {
        Some(queued) => leaf.with_search_queue(queued as usize),
        None => leaf,
    };
    let leaf = if args.await_seed {
        leaf.with_seed_gate(SeedGate::open(&args.data_dir))
    } else {
        leaf
    };
    let info = leaf.info();
    tracing::info!(%addr, shard, %replica, docs = info.num_docs, replayed = info.replayed_records, "leaf serving");
    println!("listening on {addr}");
    crate::server::serve(listener, leaf, fanout_proto::process::shutdown_signal()).await?;
    tracing::info!(%addr, "leaf stopped");
    Ok(())
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person; a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
