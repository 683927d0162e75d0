use super::*;

fn answer(
    shard: u32,
    replica: &str,
    generation: u64,
    docs: u64,
    terms: &[(&str, u64)],
) -> pb::StatsResponse {
    pb::StatsResponse {
        shard,
        replica: replica.into(),
        generation,
        stats: Some(pb::CorpusStats {
            num_docs: docs,
            fields: vec![pb::FieldStat {
                field: "body".into(),
                total_tokens: docs * 10,
            }],
            terms: terms
                .iter()
                .map(|(t, df)| pb::TermStat {
                    term: t.as_bytes().to_vec(),
                    doc_freq: *df,
                })
                .collect(),
        }),
    }
}

fn doc_freq(stats: &pb::CorpusStats, term: &str) -> u64 {
    stats
        .terms
        .iter()
        .find(|t| t.term == term.as_bytes())
        .unwrap()
        .doc_freq
}

#[test]
fn sums_shards_once_every_shard_answered() {
    let cache = StatsCache::new(2);
    assert!(cache.lookup("a b").is_none());
    cache.absorb("a b", "r0", &answer(0, "r0", 1, 100, &[("a", 5), ("b", 7)]));
    assert!(cache.lookup("a b").is_none(), "shard 1 is unknown");
    let partial = cache.sum_known("a b").unwrap();
    assert_eq!(partial.num_docs, 100);
    cache.absorb("a b", "r2", &answer(1, "r2", 4, 50, &[("a", 1), ("b", 0)]));
    let sum = cache.lookup("a b").unwrap();
    assert_eq!(sum.num_docs, 150);
    assert_eq!(sum.fields[0].total_tokens, 1500);
    assert_eq!((doc_freq(&sum, "a"), doc_freq(&sum, "b")), (6, 7));
}

#[test]
fn a_new_query_over_known_terms_needs_its_term_list_first() {
    let cache = StatsCache::new(1);
    cache.absorb("a", "r0", &answer(0, "r0", 1, 10, &[("a", 2)]));
    assert!(
        cache.lookup("+a").is_none(),
        "the root cannot parse queries"
    );
    cache.absorb("+a", "r0", &answer(0, "r0", 1, 10, &[("a", 2)]));
    assert_eq!(doc_freq(&cache.lookup("+a").unwrap(), "a"), 2);
    assert!(cache.lookup("a").is_some());
}

#[test]
fn a_generation_change_on_any_replica_invalidates_only_its_shard() {
    let cache = StatsCache::new(2);
    cache.absorb("a", "r0", &answer(0, "r0", 1, 10, &[("a", 2)]));
    cache.absorb("a", "r2", &answer(1, "r2", 1, 10, &[("a", 3)]));
    // Replicas answer from their own generations; seeing one for the first time, or the same
    // one again, changes nothing.
    assert!(!cache.observe(0, "r1", 9));
    assert!(!cache.observe(0, "r0", 1));
    assert!(!cache.observe(0, "r1", 9));
    assert!(cache.lookup("a").is_some());
    // A commit on r1.
    assert!(cache.observe(0, "r1", 10));
    assert!(cache.lookup("a").is_none());
    let known = cache.sum_known("a").unwrap();
    assert_eq!(
        (known.num_docs, doc_freq(&known, "a")),
        (10, 3),
        "shard 1 still known"
    );
    cache.absorb("a", "r1", &answer(0, "r1", 10, 12, &[("a", 4)]));
    let sum = cache.lookup("a").unwrap();
    assert_eq!((sum.num_docs, doc_freq(&sum, "a")), (22, 7));
}

#[test]
fn a_stats_answer_from_a_newer_generation_replaces_the_old_terms() {
    let cache = StatsCache::new(1);
    cache.absorb("a", "r0", &answer(0, "r0", 1, 10, &[("a", 2)]));
    cache.absorb("b", "r0", &answer(0, "r0", 2, 11, &[("b", 1)]));
    assert!(
        cache.lookup("a").is_none(),
        "a's count is from generation 1"
    );
    assert_eq!(cache.lookup("b").unwrap().num_docs, 11);
}
