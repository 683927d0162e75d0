//! Relevance on real judgments: a BEIR collection (SciFact) indexed into a local cluster, its
//! judged test queries run over the HTTP API, and nDCG@10 and Recall@100 computed against the
//! judgments, with the metrics of trec_eval (linear gain, log2 discount) that BEIR reports.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use fanout_indexer::ndjson::{Line, LineReader};
use fanout_indexer::Input;
use serde_json::Value;

/// Judgments: query id → (document id → grade).
pub type Qrels = HashMap<String, HashMap<String, u32>>;

/// nDCG at `k` of a ranking: DCG = sum of grade / log2(rank + 1) over the top `k`, divided by
/// the DCG of the ideal ranking of the judged documents. 0 when nothing is relevant.
pub fn ndcg_at(k: usize, ranked: &[String], judged: &HashMap<String, u32>) -> f64 {
    let dcg = |grades: &mut dyn Iterator<Item = u32>| -> f64 {
        grades
            .take(k)
            .enumerate()
            .map(|(i, g)| f64::from(g) / (i as f64 + 2.0).log2())
            .sum()
    };
    let mut ideal: Vec<u32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(&mut ideal.into_iter());
    if best == 0.0 {
        return 0.0;
    }
    dcg(&mut ranked.iter().map(|id| judged.get(id).copied().unwrap_or(0))) / best
}

/// Recall at `k`: the share of the relevant documents found in the top `k`.
pub fn recall_at(k: usize, ranked: &[String], judged: &HashMap<String, u32>) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| judged.get(*id).is_some_and(|&g| g > 0))
        .count();
    found as f64 / relevant as f64
}

/// Reads a BEIR qrels TSV (`query-id corpus-id score`, with a header line).
pub fn read_qrels(path: &Path) -> anyhow::Result<Qrels> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut qrels = Qrels::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let cols: Vec<&str> = line.split('\t').collect();
        if i == 0 && cols.first() == Some(&"query-id") {
            continue;
        }
        let [query, doc, grade] = cols[..] else {
            anyhow::bail!("{}:{}: expected 3 columns", path.display(), i + 1);
        };
        qrels
            .entry(query.to_string())
            .or_default()
            .insert(doc.to_string(), grade.trim().parse()?);
    }
    Ok(qrels)
}

/// A BEIR query as a plain disjunction of its words: claims hold characters the query syntax
/// gives meaning to (`-`, `(`, `:`), and upper-case AND/OR/NOT would be operators.
pub fn as_query(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads BEIR queries (`{_id, text}`), keeping those with judgments, in id order.
pub fn read_queries(path: &Path, qrels: &Qrels) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut queries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        let id = match &v["_id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if qrels.contains_key(&id) {
            queries.push((id, v["text"].as_str().unwrap_or_default().to_string()));
        }
    }
    queries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(queries)
}

/// Converts a BEIR corpus (`{_id, title, text}`, plain or gzip) into fanout documents
/// (`{id, title, body}`) in `out`. With `combine`, the body holds the title and the text
/// together, as Anserini indexes BEIR (one `contents` field). Returns the number of documents.
pub fn convert_corpus(corpus: &Path, out: &Path, combine: bool) -> anyhow::Result<u64> {
    let mut reader = LineReader::open(Input::open(corpus)?.reader, 10 << 20)?;
    let mut writer = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut n = 0;
    while let Some((number, line)) = reader.next_line()? {
        let Line::Text(line) = line else { continue };
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{number}", corpus.display()))?;
        let title = v["title"].as_str().unwrap_or_default();
        let text = v["text"].as_str().unwrap_or_default();
        let body = if combine {
            format!("{title}\n{text}")
        } else {
            text.to_string()
        };
        let doc = serde_json::json!({"id": v["_id"], "title": title, "body": body});
        writeln!(writer, "{doc}")?;
        n += 1;
    }
    writer.flush()?;
    Ok(n)
}

/// The schema the evaluation indexes with: the default fields, with `tokenizer` on the text;
/// with `combine`, only the body (title and text) is searched.
pub fn schema_toml(tokenizer: &str, combine: bool) -> String {
    let mut config = fanout_leaf::SchemaConfig::default();
    if combine {
        config.default_fields = vec!["body".into()];
    }
    for field in &mut config.fields {
        if matches!(field.field_type, fanout_leaf::schema::FieldType::Text) {
            field.tokenizer = Some(tokenizer.to_string());
        }
    }
    toml::to_string(&config).expect("a schema serializes")
}

/// What one evaluation measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    /// `global` or `shard`.
    pub stats: String,
    /// The tokenizer of the text fields.
    pub tokenizer: String,
    /// `combined` or `separate`.
    pub fields: String,
    /// Judged queries run.
    pub queries: usize,
    /// Mean nDCG@10.
    pub ndcg_at_10: f64,
    /// Mean Recall@100.
    pub recall_at_100: f64,
}

/// Runs every judged query against the root at `url` with `stats` (`global` or `shard`) and
/// averages nDCG@10 and Recall@100 over them.
pub async fn evaluate(
    url: &str,
    queries: &[(String, String)],
    qrels: &Qrels,
    stats: &str,
    tokenizer: &str,
    fields: &str,
) -> anyhow::Result<Evaluation> {
    let client = reqwest::Client::new();
    let (mut ndcg, mut recall) = (0.0, 0.0);
    for (id, text) in queries {
        let response = client
            .get(format!("{url}/v1/search"))
            .query(&[
                ("q", as_query(text).as_str()),
                ("size", "100"),
                ("stats", stats),
            ])
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "query {id}: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        let ranked: Vec<String> = body["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["id"].as_str().map(str::to_string))
            .collect();
        ndcg += ndcg_at(10, &ranked, &qrels[id]);
        recall += recall_at(100, &ranked, &qrels[id]);
    }
    let n = queries.len().max(1) as f64;
    Ok(Evaluation {
        stats: stats.to_string(),
        tokenizer: tokenizer.to_string(),
        fields: fields.to_string(),
        queries: queries.len(),
        ndcg_at_10: ndcg / n,
        recall_at_100: recall / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_matches_hand_computed_cases() {
        let one = judged(&[("a", 1)]);
        assert_eq!(ndcg_at(10, &ids(&["a", "x"]), &one), 1.0);
        // Found at rank 2: 1/log2(3).
        let at_two = ndcg_at(10, &ids(&["x", "a"]), &one);
        assert!((at_two - 1.0 / 3f64.log2()).abs() < 1e-12, "{at_two}");
        assert_eq!(ndcg_at(1, &ids(&["x", "a"]), &one), 0.0, "cut at k");
        // Two relevant, found at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2(3)).
        let two = judged(&[("a", 1), ("b", 1), ("c", 0)]);
        let got = ndcg_at(10, &ids(&["a", "c", "b"]), &two);
        let want = (1.0 + 0.5) / (1.0 + 1.0 / 3f64.log2());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Graded: the ideal puts grade 2 first.
        let graded = judged(&[("a", 1), ("b", 2)]);
        let got = ndcg_at(10, &ids(&["a", "b"]), &graded);
        let want = (1.0 + 2.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert_eq!(ndcg_at(10, &ids(&["a"]), &judged(&[("a", 0)])), 0.0);
    }

    #[test]
    fn recall_counts_relevant_documents_in_the_cut() {
        let two = judged(&[("a", 1), ("b", 1), ("c", 0)]);
        assert_eq!(recall_at(100, &ids(&["c", "a"]), &two), 0.5);
        assert_eq!(recall_at(1, &ids(&["c", "a", "b"]), &two), 0.0);
        assert_eq!(recall_at(3, &ids(&["c", "a", "b"]), &two), 1.0);
    }

    #[test]
    fn claims_become_plain_disjunctions() {
        assert_eq!(
            as_query("0-dimensional biomaterials (lack) AND: \"inductive\" properties."),
            "0 dimensional biomaterials lack and inductive properties"
        );
    }

    #[test]
    fn reads_qrels_and_keeps_judged_queries() {
        let dir = tempfile::tempdir().unwrap();
        let qrels_path = dir.path().join("test.tsv");
        std::fs::write(
            &qrels_path,
            "query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t1\n3\td9\t2\n",
        )
        .unwrap();
        let qrels = read_qrels(&qrels_path).unwrap();
        assert_eq!(qrels["1"].len(), 2);
        assert_eq!(qrels["3"]["d9"], 2);
        let queries_path = dir.path().join("queries.jsonl");
        std::fs::write(
            &queries_path,
            "{\"_id\": \"3\", \"text\": \"c\"}\n{\"_id\": \"2\", \"text\": \"b\"}\n{\"_id\": \"1\", \"text\": \"a\"}\n",
        )
        .unwrap();
        let queries = read_queries(&queries_path, &qrels).unwrap();
        assert_eq!(
            queries,
            [("1".into(), "a".into()), ("3".into(), "c".into())]
        );
    }
}
