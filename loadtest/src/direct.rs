//! The direct baseline: one tantivy index in this process holding a whole corpus, built with the
//! leaves' own schema and code, so that every cluster figure can be given as a ratio to it. And
//! the query files both are driven with.

use std::path::{Path, PathBuf};

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

/// The files of a corpus (`--corpus`, repeatable), or the bundled demo corpus if none is named.
pub fn corpus_or_demo(files: &[PathBuf]) -> Vec<PathBuf> {
    if files.is_empty() {
        vec![crate::cluster::default_corpus()]
    } else {
        files.to_vec()
    }
}

/// The files of a corpus as one name, for reports.
pub fn corpus_name(files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    names.join(" + ")
}

/// Calls `each` with every document line of `files` (plain or gzip), one file after another,
/// read as the indexer reads them; empty and over-long lines are skipped.
pub fn for_each_document(
    files: &[PathBuf],
    mut each: impl FnMut(String) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for file in files {
        let mut reader = LineReader::open(Input::open(file)?.reader, 10 << 20)?;
        while let Some((_, line)) = reader.next_line()? {
            if let Line::Text(text) = line {
                each(text)?;
            }
        }
    }
    Ok(())
}

/// Builds one in-memory tantivy index (the leaves' schema and code) holding the corpus `files`.
pub fn build_direct_index(files: &[PathBuf]) -> anyhow::Result<ShardIndex> {
    let index = ShardIndex::in_ram(
        0,
        SchemaConfig::default(),
        &WriterOptions {
            threads: 2,
            memory_bytes: 256 << 20,
        },
    )?;
    let mut batch = Vec::with_capacity(10_000);
    for_each_document(files, |text| {
        batch.push(text);
        if batch.len() == 10_000 {
            index.index_batch(0, 0, &batch)?;
            batch.clear();
        }
        Ok(())
    })?;
    index.index_batch(0, 0, &batch)?;
    index.commit()?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corpus_of_several_files_is_read_in_order_plain_or_gzip() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.ndjson");
        std::fs::write(&plain, "{\"id\": \"1\"}\n\n{\"id\": \"2\"}\n").unwrap();
        let gzip = dir.path().join("b.ndjson.gz");
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&gzip).unwrap(),
            flate2::Compression::fast(),
        );
        encoder.write_all(b"{\"id\": \"3\"}\n").unwrap();
        encoder.finish().unwrap();
        let mut seen = Vec::new();
        for_each_document(&[plain.clone(), gzip.clone()], |line| {
            seen.push(line);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [r#"{"id": "1"}"#, r#"{"id": "2"}"#, r#"{"id": "3"}"#]);
        let index = build_direct_index(&[plain, gzip]).unwrap();
        assert_eq!(index.num_docs(), 3);
    }

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
