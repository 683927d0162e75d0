//! The direct baseline: one tantivy index in this process holding a whole corpus, built with the
//! leaves' own schema and code, so that every cluster figure can be given as a ratio to it. And
//! the query files both are driven with.

use std::path::Path;

use anyhow::Context;
use fanout_indexer::ndjson::{Line, LineReader};
use fanout_indexer::Input;
use fanout_leaf::{SchemaConfig, ShardIndex, WriterOptions};

/// Reads queries: JSON lines with a `query` field (the sbg log's format), or plain text lines.
pub fn load_queries(path: &Path, shuffle_seed: Option<u64>) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let queries: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v["query"].is_string() => v["query"].as_str().unwrap_or_default().to_string(),
            _ => l.trim().to_string(),
        })
        .collect();
    anyhow::ensure!(!queries.is_empty(), "{} holds no queries", path.display());
    let mut queries = queries;
    if let Some(seed) = shuffle_seed {
        fastrand::Rng::with_seed(seed).shuffle(&mut queries);
    }
    Ok(queries)
}

/// Builds one in-memory tantivy index (the leaves' schema and code) holding `corpus`.
pub fn build_direct_index(corpus: &Path) -> anyhow::Result<ShardIndex> {
    let index = ShardIndex::in_ram(
        0,
        SchemaConfig::default(),
        &WriterOptions {
            threads: 2,
            memory_bytes: 256 << 20,
        },
    )?;
    let mut reader = LineReader::open(Input::open(corpus)?.reader, 10 << 20)?;
    let mut batch = Vec::with_capacity(10_000);
    while let Some((_, line)) = reader.next_line()? {
        if let Line::Text(t) = line {
            batch.push(t);
        }
        if batch.len() == 10_000 {
            index.index_batch(0, 0, &batch)?;
            batch.clear();
        }
    }
    index.index_batch(0, 0, &batch)?;
    index.commit()?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_plain_queries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        std::fs::write(
            &path,
            "{\"query\": \"+a +b\", \"tags\": []}\nplain words\n\n",
        )
        .unwrap();
        assert_eq!(load_queries(&path, None).unwrap(), ["+a +b", "plain words"]);
        let shuffled = load_queries(&path, Some(3)).unwrap();
        assert_eq!(shuffled.len(), 2);
        assert_eq!(
            shuffled,
            load_queries(&path, Some(3)).unwrap(),
            "same seed, same order"
        );
    }
}
