use clap::Parser;

#[tokio::main]
async fn main() {
    fanout_leaf::cli::init_tracing();
    let args = fanout_leaf::cli::Args::parse();
    if let Err(e) = fanout_leaf::cli::run(args).await {
        eprintln!("fanout-leaf: {e:#}");
        std::process::exit(2);
    }
}
