use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = fanout_loadtest::demo::Cli::parse();
    if let Err(e) = fanout_loadtest::demo::main(cli).await {
        eprintln!("fanout-cluster: {e:#}");
        std::process::exit(2);
    }
}
