//! A 50 MB line is reported by number and skipped without being held in memory. Its own test
//! binary, so that the peak memory of its children is the indexer's alone.

use std::io::Write;
use std::process::Command;

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::InfoRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_line_is_reported_and_skipped_without_being_held() {
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let leaves = [
        LeafHandle::spawn("127.0.0.1:0", LeafService::new(index, "big"))
            .await
            .unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    writeln!(f, r#"{{"id": "before", "title": "x"}}"#).unwrap();
    write!(f, r#"{{"id": "huge", "body": ""#).unwrap();
    let chunk = "y".repeat(1 << 20);
    for _ in 0..50 {
        f.write_all(chunk.as_bytes()).unwrap();
    }
    writeln!(f, r#""}}"#).unwrap();
    writeln!(f, r#"{{"id": "after", "title": "x"}}"#).unwrap();
    drop(f);
    let shard = format!("0={}", leaves[0].addr);
    let path = input.display().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_fanout-indexer"))
        .args([&path, "--shard", &shard])
        .output()
        .unwrap();
    let code = output.status.code();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:2: line is ")) && stderr.contains("over the limit"),
        "{stderr}"
    );
    assert!(
        stdout.contains("indexed 2 documents from 3 lines"),
        "{stdout}"
    );
    let mut client = LeafClient::connect(format!("http://{}", leaves[0].addr))
        .await
        .unwrap();
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.num_docs, 2);
    // The indexer's largest resident set (it is this test binary's only child): the line
    // limit (10 MiB) is read before the line is given up, the other 40 MiB never are.
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak_mib = usage.max_rss() / 1024;
    assert!(peak_mib < 35, "an indexer peaked at {peak_mib} MiB");
}
