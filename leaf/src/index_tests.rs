use super::*;
use crate::collect::Interrupt;
use crate::stats::Supplied;
use fanout_proto::shard_for_id;
use serde_json::Value;

/// A hit's stored fields, parsed back.
fn fields(hit: &LeafHit) -> Value {
    serde_json::from_str(&hit.fields_json).unwrap()
}

fn index_with(docs: &[&str]) -> ShardIndex {
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let outcome = index.index_batch(0, 0, docs).unwrap();
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    index.commit().unwrap();
    index
}

#[test]
fn finds_what_was_indexed_with_stored_fields() {
    let index = index_with(&[
        r#"{"id": "a", "title": "red fox", "body": "quick brown"}"#,
        r#"{"id": "b", "title": "blue whale", "body": "the largest animal"}"#,
        r#"{"id": "c", "title": "red panda", "body": "red fur", "date": "2024-01-02T03:04:05Z"}"#,
    ]);
    let found = index
        .search("red", 0, 10, None, &Interrupt::never())
        .unwrap();
    assert_eq!(found.total_hits, 2);
    let ids: Vec<_> = found.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["c", "a"], "c mentions red twice");
    assert_eq!(fields(&found.hits[0])["title"], "red panda");
    assert_eq!(fields(&found.hits[0])["date"], "2024-01-02T03:04:05Z");
    assert!(
        fields(&found.hits[0]).get("author").is_none(),
        "absent fields are left out"
    );
    let multi = index_with(&[r#"{"id": "m", "title": "duo", "author": ["ann", "bob"]}"#]);
    let hit = &multi
        .search("duo", 0, 1, None, &Interrupt::never())
        .unwrap()
        .hits[0];
    assert_eq!(
        fields(hit)["author"],
        serde_json::json!(["ann", "bob"]),
        "several values: an array"
    );
    assert_eq!(fields(hit)["id"], "m");
    assert_eq!(
        index
            .search("+red -panda", 0, 10, None, &Interrupt::never())
            .unwrap()
            .hits[0]
            .id,
        "a"
    );
    assert_eq!(
        index
            .search("\"largest animal\"", 0, 10, None, &Interrupt::never())
            .unwrap()
            .hits[0]
            .id,
        "b"
    );
    assert_eq!(
        index
            .search("title:whale", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
    let second = index
        .search("red", 1, 10, None, &Interrupt::never())
        .unwrap();
    assert_eq!(second.hits.len(), 1);
    assert_eq!(second.total_hits, 2);
    assert_eq!(
        index
            .search("red", 0, 0, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        2
    );
}

#[test]
fn reindexing_an_id_replaces_the_document() {
    let index = index_with(&[r#"{"id": "a", "title": "old"}"#]);
    index
        .index_batch(0, 0, &[r#"{"id": "a", "title": "new"}"#])
        .unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_docs(), 1);
    assert_eq!(
        index
            .search("old", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        0
    );
    assert_eq!(
        index
            .search("new", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
}

#[test]
fn bad_documents_are_rejected_one_by_one() {
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let outcome = index
        .index_batch(
            0,
            0,
            &[
                r#"{"id": "ok", "title": "fine"}"#,
                r#"{"title": "no id"}"#,
                r#"{"id": "d", "date": "yesterday"}"#,
                r#"[1, 2]"#,
                r#"{"id": "x""#,
                r#"{"id": 42, "title": "numeric ids are kept as strings"}"#,
            ],
        )
        .unwrap();
    assert_eq!(outcome.accepted, 2);
    let positions: Vec<u32> = outcome.rejected.iter().map(|r| r.0).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert!(
        outcome.rejected[0].1.contains("missing id"),
        "{:?}",
        outcome.rejected
    );
    assert!(
        outcome.rejected[1].1.contains("date"),
        "{:?}",
        outcome.rejected
    );
    index.commit().unwrap();
    assert_eq!(
        index
            .search("id:42", 0, 1, None, &Interrupt::never())
            .unwrap()
            .hits[0]
            .id,
        "42"
    );
}

#[test]
fn refuses_documents_routed_to_the_wrong_shard() {
    let index = ShardIndex::in_ram(1, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let err = index.index_batch(0, 2, &[r#"{"id": "a"}"#]).unwrap_err();
    assert!(
        matches!(
            err,
            LeafError::WrongShard {
                sent_to: 0,
                serves: 1
            }
        ),
        "{err}"
    );
    let ids: Vec<String> = (0..20).map(|i| format!("doc-{i}")).collect();
    let docs: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"id": "{id}"}}"#))
        .collect();
    let outcome = index.index_batch(1, 2, &docs).unwrap();
    let expected_ok = ids.iter().filter(|id| shard_for_id(id, 2) == 1).count();
    assert_eq!(outcome.accepted as usize, expected_ok);
    assert!(outcome
        .rejected
        .iter()
        .all(|(_, r)| r.contains("belongs to shard 0")));
}

#[test]
fn bad_queries_and_windows_are_invalid_arguments() {
    let index = index_with(&[r#"{"id": "a", "title": "x"}"#]);
    let err = index
        .search("title:(", 0, 10, None, &Interrupt::never())
        .unwrap_err();
    assert!(matches!(err, LeafError::Query(_)), "{err}");
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::InvalidArgument
    );
    let err = index
        .search("nosuchfield:x", 0, 10, None, &Interrupt::never())
        .unwrap_err();
    assert!(matches!(err, LeafError::InvalidQuery(_)), "{err}");
    let err = index
        .search("x", MAX_WINDOW, 1, None, &Interrupt::never())
        .unwrap_err();
    assert!(matches!(err, LeafError::InvalidArgument(_)), "{err}");
}

#[test]
fn generation_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WriterOptions::default();
    let generation = {
        let index =
            ShardIndex::open_or_create(dir.path(), 0, SchemaConfig::default(), &opts).unwrap();
        index
            .index_batch(0, 0, &[r#"{"id": "a", "title": "kept"}"#])
            .unwrap();
        index.commit().unwrap()
    };
    assert!(generation > 0);
    let index = ShardIndex::open_or_create(dir.path(), 0, SchemaConfig::default(), &opts).unwrap();
    assert_eq!(index.generation(), generation);
    assert_eq!(
        index
            .search("kept", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
    let mut other = SchemaConfig::default();
    other.fields.pop();
    drop(index);
    let err = ShardIndex::open_or_create(dir.path(), 0, other, &opts)
        .err()
        .unwrap();
    assert!(err.to_string().contains("different schema"), "{err}");
}

#[test]
fn acknowledged_writes_survive_a_crash_before_any_commit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WriterOptions::default();
    let open =
        || ShardIndex::open_or_create(dir.path(), 0, SchemaConfig::default(), &opts).unwrap();
    let first_generation = {
        let index = open();
        index
            .index_batch(0, 0, &[r#"{"id": "a", "title": "committed"}"#])
            .unwrap();
        let generation = index.commit().unwrap();
        index
            .index_batch(
                0,
                0,
                &[
                    r#"{"id": "b", "title": "logged only"}"#,
                    r#"{"id": "c", "title": "logged then deleted"}"#,
                    r#"{"id": "a", "title": "replaced after the commit"}"#,
                ],
            )
            .unwrap();
        index.delete_batch(0, 0, &["c"]).unwrap();
        assert_eq!(
            index.num_docs(),
            1,
            "nothing new is visible before a commit"
        );
        assert_eq!(index.uncommitted().ops, 2);
        assert!(index.uncommitted().log_bytes > 0);
        generation
        // Dropped without a commit: the index writer's work since the commit is gone, as
        // after kill -9.
    };
    let index = open();
    assert_eq!(index.replayed(), 2, "one batch and one deletion");
    assert!(
        index.generation() > first_generation,
        "the replay was committed"
    );
    assert_eq!(index.num_docs(), 2);
    assert_eq!(
        index
            .search("logged", 0, 10, None, &Interrupt::never())
            .unwrap()
            .hits[0]
            .id,
        "b"
    );
    assert_eq!(
        index
            .search("deleted", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        0
    );
    assert_eq!(
        index
            .search("committed", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        0
    );
    assert_eq!(
        index
            .search("replaced", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
    assert_eq!(index.uncommitted(), Uncommitted::default());
    drop(index);
    let index = open();
    assert_eq!(index.replayed(), 0, "the replay's commit trimmed the log");
    assert_eq!(index.num_docs(), 2);
}

#[test]
fn a_commit_with_nothing_new_keeps_the_generation() {
    let index = index_with(&[r#"{"id": "a"}"#]);
    let generation = index.generation();
    assert_eq!(index.commit().unwrap(), generation);
    index.delete_batch(0, 0, &["a", ""]).unwrap();
    let after = index.commit().unwrap();
    assert!(after > generation);
    assert_eq!(index.num_docs(), 0);
}

#[test]
fn deletions_check_ids_and_routing() {
    let index = ShardIndex::in_ram(1, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("doc-{i}")).collect();
    let mut with_empty = ids.clone();
    with_empty.push(String::new());
    let outcome = index.delete_batch(1, 2, &with_empty).unwrap();
    let owned = ids.iter().filter(|id| shard_for_id(id, 2) == 1).count();
    assert_eq!(outcome.accepted as usize, owned);
    assert_eq!(outcome.rejected.len(), 21 - owned);
    assert_eq!(
        outcome.rejected.last().unwrap(),
        &(20, "empty id".to_string())
    );
    assert!(matches!(
        index.delete_batch(0, 2, &["x"]).unwrap_err(),
        LeafError::WrongShard { .. }
    ));
}

#[test]
fn an_id_sent_twice_before_a_commit_is_one_document() {
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    index
        .index_batch(
            0,
            0,
            &[
                r#"{"id": "a", "title": "first"}"#,
                r#"{"id": "a", "title": "second"}"#,
            ],
        )
        .unwrap();
    index
        .index_batch(
            0,
            0,
            &[r#"{"id": "a", "title": "third"}"#, r#"{"id": "b"}"#],
        )
        .unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_docs(), 2);
    assert_eq!(
        index
            .search("title:third", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
    assert_eq!(
        index
            .search("title:first title:second", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        0
    );
    // And after the commit, against the committed segments.
    index
        .index_batch(0, 0, &[r#"{"id": "b", "title": "fourth"}"#])
        .unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_docs(), 2);
    assert_eq!(
        index
            .search("title:fourth", 0, 10, None, &Interrupt::never())
            .unwrap()
            .hits[0]
            .id,
        "b"
    );
}

#[test]
fn the_english_analyzer_stems_and_drops_stop_words() {
    let mut config = SchemaConfig::default();
    for field in &mut config.fields {
        if field.name == "title" {
            field.tokenizer = Some("en".into());
        }
    }
    let index = ShardIndex::in_ram(0, config, &WriterOptions::default()).unwrap();
    index
        .index_batch(
            0,
            0,
            &[r#"{"id": "a", "title": "The Running of the Dogs"}"#],
        )
        .unwrap();
    index.commit().unwrap();
    assert_eq!(
        index
            .search("title:run", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
    assert_eq!(
        index
            .search("title:dog", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        1
    );
    assert_eq!(
        index
            .search("title:the", 0, 10, None, &Interrupt::never())
            .unwrap()
            .total_hits,
        0,
        "a stop word is not indexed"
    );
}

#[test]
fn an_interrupted_search_stops_with_its_reason() {
    let index = index_with(&[r#"{"id": "a", "title": "x"}"#]);
    let cancelled = std::sync::atomic::AtomicBool::new(true);
    let interrupt = Interrupt {
        cancelled: Some(&cancelled),
        deadline: None,
    };
    let err = index.search("x", 0, 10, None, &interrupt).unwrap_err();
    assert!(matches!(err, LeafError::Cancelled), "{err}");
    let interrupt = Interrupt {
        cancelled: None,
        deadline: Some(std::time::Instant::now()),
    };
    let err = index.search("*", 0, 0, None, &interrupt).unwrap_err();
    assert!(matches!(err, LeafError::DeadlineExceeded), "{err}");
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::DeadlineExceeded
    );
}

#[test]
fn a_search_with_statistics_from_another_generation_says_what_they_are_now() {
    let index = index_with(&[
        r#"{"id": "a", "title": "red fox"}"#,
        r#"{"id": "b", "title": "red panda"}"#,
    ]);
    let (generation, current) = index.stats("red").unwrap();
    let search = |supplied: &Supplied| {
        index
            .search("red", 0, 10, Some(supplied), &Interrupt::never())
            .unwrap()
    };
    let matching = Supplied {
        stats: current.clone(),
        generation: Some(generation),
    };
    let found = search(&matching);
    assert_eq!((found.generation, found.shard_stats), (generation, None));
    // Scored with the shard's own statistics, as a search without supplied ones is.
    let own = index
        .search("red", 0, 10, None, &Interrupt::never())
        .unwrap();
    assert_eq!(found.hits, own.hits);

    // After a delete, the old statistics still score (as asked), and the answer carries the
    // new ones, from the generation searched: the deleted document no longer counts.
    index.delete_batch(0, 0, &["b"]).unwrap();
    let next = index.commit().unwrap();
    let stale = search(&matching);
    assert_eq!(stale.generation, next);
    let now = stale.shard_stats.expect("statistics of the new generation");
    assert_eq!(now, index.stats("red").unwrap().1);
    assert_eq!((current.num_docs, now.num_docs), (2, 1));
    // Unknown generation: the caller cannot tell, so the leaf says.
    let unknown = Supplied {
        generation: None,
        ..matching
    };
    assert_eq!(search(&unknown).shard_stats, Some(now));
}
