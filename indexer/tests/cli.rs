//! The real `fanout-indexer` binary against real leaves in-process: malformed lines are reported
//! with their line numbers, everything else is indexed on every replica of its shard.

use std::io::Write;
use std::process::Command;

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::{InfoRequest, SearchRequest};
use fanout_proto::shard_for_id;

async fn leaf(shard: u32) -> LeafHandle {
    let index =
        ShardIndex::in_ram(shard, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    LeafHandle::spawn(
        "127.0.0.1:0",
        LeafService::new(index, format!("shard-{shard}")),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_bad_lines_by_number_and_indexes_the_rest_on_every_replica() {
    let leaves = [leaf(0).await, leaf(0).await, leaf(1).await, leaf(1).await];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.ndjson");
    let rejects = dir.path().join("rejects.ndjson");
    let mut f = std::fs::File::create(&input).unwrap();
    let mut good = Vec::new();
    for i in 0..300 {
        match i {
            10 => f.write_all(b"{\"id\": \"broken\", \"title\": \n").unwrap(),
            20 => f.write_all(b"{\"title\": \"no id\"}\n").unwrap(),
            30 => f
                .write_all(b"{\"id\": \"bad-date\", \"date\": \"last tuesday\"}\n")
                .unwrap(),
            40 => f
                .write_all(b"{\"id\": \"latin1\", \"title\": \"caf\xe9\"}\n")
                .unwrap(),
            50 => f.write_all(b"\n").unwrap(),
            60 => {
                let huge = "x".repeat(2_000);
                writeln!(f, "{{\"id\": \"huge\", \"title\": \"{huge}\"}}").unwrap();
            }
            _ => {
                let id = format!("doc-{i}");
                writeln!(
                    f,
                    "{}",
                    serde_json::json!({"id": id, "title": format!("title {i}"), "body": "common"})
                )
                .unwrap();
                good.push(id);
            }
        }
    }
    drop(f);

    let spec = |s: usize| format!("{s}={},{}", leaves[2 * s].addr, leaves[2 * s + 1].addr);
    let output = Command::new(env!("CARGO_BIN_EXE_fanout-indexer"))
        .arg(&input)
        .args(["--shard", &spec(0), "--shard", &spec(1)])
        .args(["--batch-docs", "64", "--max-line-bytes", "1000"])
        .arg("--rejects")
        .arg(&rejects)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "rejects exit with 1\n{stderr}\n{stdout}"
    );
    let name = input.display().to_string();
    for (line, why) in [
        (11, "invalid JSON"),
        (21, "missing id field"),
        (31, "date"),
        (41, "not valid UTF-8"),
        (51, "empty line"),
        (61, "over the limit of 1000 bytes"),
    ] {
        let needle = format!("{name}:{line}: ");
        let reported = stderr
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("line {line} not reported:\n{stderr}"));
        assert!(
            reported.contains(why),
            "line {line} should say {why:?}: {reported}"
        );
    }
    assert!(
        stdout.contains("indexed 294 documents from 300 lines"),
        "{stdout}"
    );
    assert!(stdout.contains("rejected 6"), "{stdout}");
    let rejects_file = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(rejects_file.lines().count(), 6);
    let first: serde_json::Value =
        serde_json::from_str(rejects_file.lines().next().unwrap()).unwrap();
    assert_eq!(first["line"], 11);

    // Every replica holds exactly the good documents of its shard.
    for (i, handle) in leaves.iter().enumerate() {
        let shard = (i / 2) as u32;
        let mut client = LeafClient::connect(format!("http://{}", handle.addr))
            .await
            .unwrap();
        let info = client.info(InfoRequest {}).await.unwrap().into_inner();
        let expected: Vec<&String> = good
            .iter()
            .filter(|id| shard_for_id(id, 2) == shard)
            .collect();
        assert_eq!(info.num_docs, expected.len() as u64, "replica {i}");
        let found = client
            .search(SearchRequest {
                query: "common".into(),
                size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut ids: Vec<String> = found.hits.into_iter().map(|h| h.id).collect();
        ids.sort();
        let mut expected: Vec<String> = expected.into_iter().cloned().collect();
        expected.sort();
        assert_eq!(ids, expected, "replica {i}");
    }

    // Re-running the same input replaces documents instead of duplicating them.
    let again = Command::new(env!("CARGO_BIN_EXE_fanout-indexer"))
        .arg(&input)
        .args(["--shard", &spec(0), "--shard", &spec(1)])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let mut total = 0;
    for handle in leaves.iter().step_by(2) {
        let mut client = LeafClient::connect(format!("http://{}", handle.addr))
            .await
            .unwrap();
        total += client
            .info(InfoRequest {})
            .await
            .unwrap()
            .into_inner()
            .num_docs;
    }
    assert_eq!(
        total,
        294 + 1,
        "the huge line fits the default limit on the second run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stays_down_is_named_with_exit_code_2() {
    let live = leaf(0).await;
    // Bind and drop: a port with nothing behind it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fanout-indexer"))
        .args([
            "--shard",
            &format!("0={},{dead}", live.addr),
            "--retries",
            "1",
        ])
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"{\"id\": \"a\"}\n{\"id\": \"b\"}\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "replica http://{dead} of shard 0 is missing 2 documents"
        )),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("indexed 0 documents"));
}

fn run_indexer(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fanout-indexer"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn num_docs(handle: &LeafHandle) -> u64 {
    let mut client = LeafClient::connect(format!("http://{}", handle.addr))
        .await
        .unwrap();
    client
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .num_docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_by_id_and_plans_a_reshard_of_the_same_input() {
    let leaves = [leaf(0).await, leaf(1).await];
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.ndjson");
    let ids: Vec<String> = (0..200).map(|i| format!("doc-{i}")).collect();
    let lines: Vec<String> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "title": "to be deleted maybe"}).to_string())
        .collect();
    std::fs::write(&docs, lines.join("\n")).unwrap();
    let doomed = dir.path().join("doomed.ndjson");
    // Whole documents work as delete input: only the id is read.
    std::fs::write(&doomed, lines[..60].join("\n")).unwrap();
    let specs = [
        "--shard".to_string(),
        format!("0={}", leaves[0].addr),
        "--shard".to_string(),
        format!("1={}", leaves[1].addr),
    ];
    let with = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|s| s.to_string())
            .chain(specs.iter().cloned())
            .collect()
    };
    let args = with(&[&docs.display().to_string()]);
    let (code, _, stderr) = run_indexer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{stderr}");
    let args = with(&[&doomed.display().to_string(), "--delete"]);
    let (code, stdout, stderr) = run_indexer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("deleted 60 documents from 60 lines"),
        "{stdout}"
    );
    for (shard, handle) in leaves.iter().enumerate() {
        let left = ids[60..]
            .iter()
            .filter(|id| shard_for_id(id, 2) == shard as u32)
            .count() as u64;
        assert_eq!(num_docs(handle).await, left, "shard {shard}");
    }

    let moved = dir.path().join("moved.ndjson");
    let (code, stdout, stderr) = run_indexer(&[
        "plan",
        "--from",
        "2",
        "--to",
        "3",
        "--moved",
        &moved.display().to_string(),
        &docs.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let moving = ids.iter().filter(|id| shard_for_id(id, 3) == 2).count();
    let moved_ids: Vec<String> = std::fs::read_to_string(&moved)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<&String> = ids.iter().filter(|id| shard_for_id(id, 3) == 2).collect();
    assert_eq!(
        moved_ids.iter().collect::<Vec<_>>(),
        want,
        "the moved ids, in input order"
    );
    assert!(
        stdout.starts_with(&format!(
            "resharding 200 documents from 2 to 3 shards: {moving} move"
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains("-> shard 0") && !stdout.contains("-> shard 1"),
        "{stdout}"
    );
}
