//! End to end, as a user runs it: the real `fanout-cluster` binary starts leaf and root
//! processes on part of the bundled demo corpus; searches go over HTTP; leaves are killed with
//! SIGKILL and the launcher restarts them; a restart of the launcher finds the committed
//! documents again.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const DOCS: usize = 3_000;

/// The first `DOCS` documents of the demo corpus, as a plain NDJSON file.
fn sample_corpus(dir: &Path) -> (std::path::PathBuf, Vec<Value>) {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/wordnet.ndjson.gz");
    let mut text = String::new();
    flate2_read(&demo).read_to_string(&mut text).unwrap();
    let lines: Vec<&str> = text.lines().take(DOCS).collect();
    let path = dir.join("sample.ndjson");
    std::fs::write(&path, lines.join("\n")).unwrap();
    (
        path,
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn flate2_read(path: &Path) -> impl Read {
    // The test reuses the indexer's gzip detection rather than a second decoder.
    let file = std::fs::File::open(path).unwrap();
    let mut reader = fanout_indexer::ndjson::LineReader::open(Box::new(file), 1 << 20).unwrap();
    let mut out = Vec::new();
    while let Some((_, line)) = reader.next_line().unwrap() {
        if let fanout_indexer::ndjson::Line::Text(t) = line {
            out.extend_from_slice(t.as_bytes());
            out.push(b'\n');
        }
    }
    std::io::Cursor::new(out)
}

struct Launcher {
    child: Child,
    url: String,
    stderr: std::sync::mpsc::Receiver<String>,
    /// What it said on stderr so far, once read.
    said: Vec<String>,
}

fn launch(data_dir: &Path, corpus: &Path) -> Launcher {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanout-cluster"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--replicas",
            "2",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--corpus")
        .arg(corpus)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, stderr) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "launcher exited before serving"
        );
        if let Some(url) = line.trim().strip_prefix("fanout is serving on ") {
            break url.to_string();
        }
        assert!(Instant::now() < deadline, "launcher did not start in time");
    };
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Launcher {
        child,
        url,
        stderr,
        said: Vec::new(),
    }
}

impl Launcher {
    fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        })
    }

    /// Waits until the launcher has said `line` on stderr.
    fn wait_for_line(&mut self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.said.iter().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(said) => self.said.push(said),
                Err(_) => panic!("the launcher did not say {line:?}: {:#?}", self.said),
            }
        }
    }

    fn stop(mut self) -> Vec<String> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = std::mem::take(&mut self.said);
                stderr.extend(self.stderr.try_iter());
                assert!(
                    status.success(),
                    "launcher exit: {status}; it said: {stderr:#?}"
                );
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "launcher did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids of the leaf processes serving `data_dir/shard-S/replica-R`, found in /proc.
fn leaf_pids(data_dir: &Path, shard: u32, replica: u32) -> Vec<i32> {
    let needle = data_dir
        .join(format!("shard-{shard}"))
        .join(format!("replica-{replica}"));
    let needle = needle.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline
                .split(|&b| b == 0)
                .any(|arg| arg == needle.as_bytes())
        })
        .collect()
}

/// The pid of the one leaf process serving `data_dir/shard-S/replica-R`.
fn leaf_pid(data_dir: &Path, shard: u32, replica: u32) -> i32 {
    let pids = leaf_pids(data_dir, shard, replica);
    assert_eq!(pids.len(), 1, "expected one leaf process, found {pids:?}");
    pids[0]
}

/// Waits until a leaf other than `killed` serves `data_dir/shard-S/replica-R`.
fn wait_for_restart(data_dir: &Path, shard: u32, replica: u32, killed: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let [pid] = leaf_pids(data_dir, shard, replica)[..] {
            if pid != killed {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "leaf-{shard}-{replica} was not restarted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_quick_start_cluster_serves_survives_leaf_kills_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (corpus, docs) = sample_corpus(dir.path());
    let data_dir = dir.path().join("data");
    let mut cluster = launch(&data_dir, &corpus);

    // Every sampled document is found by its id, with its stored fields.
    for doc in docs.iter().step_by(97) {
        let id = doc["id"].as_str().unwrap();
        let (status, body) =
            cluster.get(&format!("/v1/search?q={}", encode(&format!("id:\"{id}\""))));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total_hits"], 1, "{id}: {body}");
        assert_eq!(body["hits"][0]["fields"]["title"], doc["title"]);
        assert_eq!(body["hits"][0]["fields"]["body"], doc["body"]);
    }
    let (_, all) = cluster.get("/v1/search?q=*&size=0");
    assert_eq!(all["total_hits"], DOCS as u64);

    // SIGKILL one replica of each shard: every document is still found.
    let killed = [leaf_pid(&data_dir, 0, 0), leaf_pid(&data_dir, 1, 1)];
    for pid in killed {
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    }
    for _ in 0..5 {
        let (status, body) = cluster.get("/v1/search?q=*&size=0");
        assert_eq!(status, 200);
        assert_eq!(body["total_hits"], DOCS as u64, "{body}");
        assert_eq!(body["partial"], false);
    }

    // The launcher restarts both, from their data directories.
    wait_for_restart(&data_dir, 0, 0, killed[0]);
    wait_for_restart(&data_dir, 1, 1, killed[1]);
    // A restarted process is reported once it listens again.
    cluster.wait_for_line("leaf-0-0 restarted");
    cluster.wait_for_line("leaf-1-1 restarted");

    // With every replica of shard 1 stopped, a search answers by its deadline with shard 0's
    // documents and names shard 1.
    let stopped = [leaf_pid(&data_dir, 1, 0), leaf_pid(&data_dir, 1, 1)];
    for pid in stopped {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    }
    let started = Instant::now();
    let (status, body) = cluster.get("/v1/search?q=*&size=0&timeout_ms=500");
    assert!(started.elapsed() < Duration::from_secs(2));
    for pid in stopped {
        kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
    }
    assert_eq!(status, 200);
    assert_eq!(body["partial"], true);
    assert_eq!(body["shards"]["failed"][0]["shard"], 1);
    let on_shard_0 = docs
        .iter()
        .filter(|d| fanout_proto::shard_for_id(d["id"].as_str().unwrap(), 2) == 0)
        .count();
    assert_eq!(body["total_hits"], on_shard_0 as u64);

    // Whole again, from the restarted replicas alone (their siblings stopped): they serve
    // what they held before they were killed. The root answers partial until it has ejected
    // the stopped siblings.
    let siblings = [leaf_pid(&data_dir, 0, 1), leaf_pid(&data_dir, 1, 0)];
    for pid in siblings {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let whole = loop {
        let (status, body) = cluster.get("/v1/search?q=*&size=0&timeout_ms=500");
        if status == 200 && body["partial"] == false {
            break body;
        }
        if Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for pid in siblings {
        kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
    }
    assert_eq!(
        whole["partial"], false,
        "the restarted replicas did not answer: {whole}"
    );
    assert_eq!(whole["total_hits"], DOCS as u64, "{whole}");
    let stderr = cluster.stop();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(&format!("indexed {DOCS} documents"))),
        "{stderr:?}"
    );
    for name in ["leaf-0-0", "leaf-1-1"] {
        let reported = format!("{name} exited (signal: 9 (SIGKILL))");
        assert!(
            stderr.iter().any(|l| l.starts_with(&reported)),
            "{stderr:?}"
        );
        let restarted = format!("{name} restarted");
        assert!(stderr.iter().any(|l| l == &restarted), "{stderr:?}");
    }

    // A restart finds the committed documents and does not index them again.
    let cluster = launch(&data_dir, &corpus);
    let (_, body) = cluster.get("/v1/search?q=*&size=0");
    assert_eq!(body["total_hits"], DOCS as u64);
    let stderr = cluster.stop();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(&format!("holds {DOCS} documents from an earlier run"))),
        "{stderr:?}"
    );
    std::io::stderr().flush().unwrap();
}
