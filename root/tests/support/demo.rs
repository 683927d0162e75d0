//! The demo corpus (WordNet) and queries over it, for the tests that compare splits with one
//! index: generated from the corpus's own words, and the sbg query log when the shared data is
//! at hand (`FANOUT_SHARED_DATA`, or `../shared/data` beside the repository).

use std::path::PathBuf;

use fanout_indexer::ndjson::{Line, LineReader};
use serde_json::Value;

/// The first `n` documents of the demo corpus.
pub fn documents(n: usize) -> Vec<Value> {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo/wordnet.ndjson.gz");
    let file = std::fs::File::open(demo).unwrap();
    let mut reader = LineReader::open(Box::new(file), 1 << 20).unwrap();
    let mut docs = Vec::new();
    while let Some((_, Line::Text(line))) = reader.next_line().unwrap() {
        docs.push(serde_json::from_str(&line).unwrap());
        if docs.len() == n {
            break;
        }
    }
    docs
}

/// `count` queries of every shape from the bodies of `docs`, seeded: two terms, both
/// required, a phrase of two adjacent words, one required and one excluded, a field query;
/// with `long`, also three required terms and five optional ones, whose scores tantivy adds
/// in an order that depends on each segment's postings.
pub fn generated_queries(docs: &[Value], count: usize, long: bool) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(7);
    let shapes = if long { 7 } else { 5 };
    let mut queries = Vec::new();
    while queries.len() < count {
        let words: Vec<String> = docs[rng.usize(..docs.len())]["body"]
            .as_str()
            .unwrap_or_default()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_lowercase)
            .collect();
        if words.len() < 3 {
            continue;
        }
        let i = rng.usize(..words.len() - 1);
        let (a, b) = (&words[i], &words[i + 1]);
        let other = &words[rng.usize(..words.len())];
        let fourth = &words[rng.usize(..words.len())];
        queries.push(match queries.len() % shapes {
            0 => format!("{a} {other}"),
            1 => format!("+{a} +{b}"),
            2 => format!("\"{a} {b}\""),
            3 => format!("+{a} -{other}"),
            4 => format!("body:{a} title:{other}"),
            5 => format!("+{a} +{b} +{other}"),
            _ => format!("{a} {b} {other} {fourth} body:{a}"),
        });
    }
    queries
}

/// The first `limit` queries of the sbg log, or none if the shared data is not at hand.
pub fn sbg_queries(limit: usize) -> Vec<String> {
    let dir = std::env::var_os("FANOUT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let Ok(text) = std::fs::read_to_string(dir.join("queries/sbg-queries.jsonl")) else {
        eprintln!("the sbg query log is not at hand: generated queries only");
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["query"].as_str().map(str::to_string))
        .take(limit)
        .collect()
}
