use super::*;

fn stats(docs: u64, terms: &[(&str, u64)]) -> pb::CorpusStats {
    pb::CorpusStats {
        num_docs: docs,
        fields: vec![pb::FieldStat {
            field: "body".into(),
            total_tokens: docs.saturating_mul(10),
        }],
        terms: terms
            .iter()
            .map(|(t, df)| pb::TermStat {
                term: t.as_bytes().to_vec(),
                doc_freq: *df,
            })
            .collect(),
    }
}

fn doc_freq(sums: &Sums, term: &str) -> u64 {
    sums.stats
        .terms
        .iter()
        .find(|t| t.term == term.as_bytes())
        .unwrap()
        .doc_freq
}

fn source(replica: &str, generation: u64) -> Source {
    Some((replica.into(), generation))
}

#[test]
fn sums_shards_once_every_shard_answered_and_says_where_each_part_came_from() {
    let cache = StatsCache::new(2);
    assert!(cache.lookup("a b").is_none());
    cache.absorb(
        "a b",
        ("r0", 1),
        0,
        &stats(100, &[("a", 5), ("b", 7)]),
        Origin::Asked,
    );
    assert!(cache.lookup("a b").is_none(), "shard 1 is unknown");
    let partial = cache.sum_known("a b").unwrap();
    assert_eq!(partial.stats.num_docs, 100);
    assert_eq!(partial.sources, vec![source("r0", 1), None]);
    cache.absorb(
        "a b",
        ("r2", 4),
        1,
        &stats(50, &[("a", 1), ("b", 0)]),
        Origin::Asked,
    );
    let sum = cache.lookup("a b").unwrap();
    assert_eq!(sum.stats.num_docs, 150);
    assert_eq!(sum.stats.fields[0].total_tokens, 1500);
    assert_eq!((doc_freq(&sum, "a"), doc_freq(&sum, "b")), (6, 7));
    assert_eq!(sum.sources, vec![source("r0", 1), source("r2", 4)]);
}

#[test]
fn a_new_query_over_known_terms_needs_its_term_list_first() {
    let cache = StatsCache::new(1);
    cache.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    assert!(
        cache.lookup("+a").is_none(),
        "the root cannot parse queries"
    );
    cache.absorb("+a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    assert_eq!(doc_freq(&cache.lookup("+a").unwrap(), "a"), 2);
    assert!(cache.lookup("a").is_some());
}

#[test]
fn only_the_source_moving_on_invalidates_and_only_its_shard() {
    let cache = StatsCache::new(2);
    cache.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    cache.absorb("a", ("r2", 1), 1, &stats(10, &[("a", 3)]), Origin::Asked);
    // Other replicas of shard 0 answer from their own generations: nothing to do with the
    // cached figures, which are r0's; nor is an answer of r0 overtaken by a commit.
    cache.observe(0, "r1", 9);
    cache.observe(0, "r0", 1);
    cache.observe(0, "r0", 0);
    assert!(cache.lookup("a").is_some());
    // A commit on r0.
    cache.observe(0, "r0", 2);
    assert!(cache.lookup("a").is_none());
    let known = cache.sum_known("a").unwrap();
    assert_eq!(
        (known.stats.num_docs, doc_freq(&known, "a")),
        (10, 3),
        "shard 1 still known"
    );
    cache.absorb("a", ("r1", 10), 0, &stats(12, &[("a", 4)]), Origin::Asked);
    let sum = cache.lookup("a").unwrap();
    assert_eq!((sum.stats.num_docs, doc_freq(&sum, "a")), (22, 7));
    assert_eq!(sum.sources[0], source("r1", 10));
}

#[test]
fn another_replica_replaces_the_source_when_asked_or_when_it_contradicts_it() {
    let cache = StatsCache::new(1);
    cache.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    cache.absorb("b", ("r0", 1), 0, &stats(10, &[("b", 5)]), Origin::Asked);
    // A search answer from r1 that agrees changes nothing, not even a term it adds.
    cache.absorb(
        "a c",
        ("r1", 7),
        0,
        &stats(10, &[("a", 2), ("c", 1)]),
        Origin::Search,
    );
    assert_eq!(cache.lookup("a").unwrap().sources[0], source("r0", 1));
    assert!(cache.lookup("a c").is_none(), "c was r1's");
    // One that contradicts makes r1 the source, and r0's figures go.
    cache.absorb("a", ("r1", 7), 0, &stats(11, &[("a", 3)]), Origin::Search);
    let sum = cache.lookup("a").unwrap();
    assert_eq!(
        (sum.stats.num_docs, sum.sources[0].clone()),
        (11, source("r1", 7))
    );
    assert!(cache.lookup("b").is_none(), "b's count was r0's");
    // Asked (r1 could not answer), r0 is the source again.
    cache.absorb("b", ("r0", 2), 0, &stats(10, &[("b", 5)]), Origin::Asked);
    assert_eq!(cache.lookup("b").unwrap().sources[0], source("r0", 2));
    assert!(cache.lookup("a").is_none());
}

#[test]
fn the_source_at_a_new_generation_replaces_the_old_terms_and_an_old_one_is_ignored() {
    let cache = StatsCache::new(1);
    cache.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    cache.absorb("b", ("r0", 2), 0, &stats(11, &[("b", 1)]), Origin::Search);
    assert!(
        cache.lookup("a").is_none(),
        "a's count is from generation 1"
    );
    assert_eq!(cache.lookup("b").unwrap().stats.num_docs, 11);
    // An answer from before the commit, arriving late.
    cache.absorb("b", ("r0", 1), 0, &stats(10, &[("b", 9)]), Origin::Search);
    assert_eq!(cache.lookup("b").unwrap().stats.num_docs, 11);
    // Asked, r0 says generation 1 again: it was rebuilt, and what it says now holds.
    cache.absorb("b", ("r0", 1), 0, &stats(3, &[("b", 1)]), Origin::Asked);
    let sum = cache.lookup("b").unwrap();
    assert_eq!(
        (sum.stats.num_docs, sum.sources[0].clone()),
        (3, source("r0", 1))
    );
}

#[test]
fn an_answer_is_exact_when_its_figures_are_those_it_was_scored_with() {
    let cache = StatsCache::new(2);
    cache.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    cache.absorb("a", ("r2", 4), 1, &stats(20, &[("a", 3)]), Origin::Asked);
    let sums = cache.lookup("a").unwrap();
    // The source leaves its figures out when it is still on their generation.
    assert!(sums.is_exact(0, ("r0", 1), None));
    assert!(
        !sums.is_exact(0, ("r0", 2), None),
        "the source at another generation"
    );
    // Another replica must send them; the same figures are exact, others are not.
    assert!(!sums.is_exact(0, ("r1", 1), None), "unverified");
    assert!(sums.is_exact(0, ("r1", 7), Some(&stats(10, &[("a", 2)]))));
    assert!(!sums.is_exact(0, ("r1", 7), Some(&stats(11, &[("a", 2)]))));
    assert!(!sums.is_exact(1, ("r3", 4), Some(&stats(20, &[("a", 4)]))));
    // A shard the sums left out is never exact.
    let partial = StatsCache::new(2);
    partial.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    let sums = partial.sum_known("a").unwrap();
    assert!(!sums.is_exact(1, ("r2", 4), Some(&stats(20, &[("a", 3)]))));
}

#[test]
fn hostile_figures_saturate_instead_of_overflowing() {
    let cache = StatsCache::new(2);
    cache.absorb(
        "a",
        ("r0", 1),
        0,
        &stats(u64::MAX, &[("a", u64::MAX)]),
        Origin::Asked,
    );
    cache.absorb("a", ("r1", 1), 1, &stats(5, &[("a", 5)]), Origin::Asked);
    let sum = cache.lookup("a").unwrap();
    assert_eq!(
        (sum.stats.num_docs, doc_freq(&sum, "a")),
        (u64::MAX, u64::MAX)
    );
}

#[test]
fn a_source_that_leaves_takes_its_figures_along() {
    let cache = StatsCache::new(1);
    cache.absorb("a", ("r0", 1), 0, &stats(10, &[("a", 2)]), Origin::Asked);
    cache.forget_replicas(0, &["r1".into()]);
    assert!(cache.lookup("a").is_some());
    cache.forget_replicas(0, &["r0".into()]);
    assert!(cache.lookup("a").is_none());
}

#[test]
fn an_answer_with_more_terms_than_any_query_uses_is_not_taken_in() {
    let cache = StatsCache::new(1);
    let huge = pb::CorpusStats {
        terms: (0..=MAX_TERMS_PER_ANSWER as u64)
            .map(|i| pb::TermStat {
                term: i.to_be_bytes().to_vec(),
                doc_freq: 1,
            })
            .collect(),
        ..stats(10, &[])
    };
    cache.absorb("a", ("r0", 1), 0, &huge, Origin::Asked);
    assert!(cache.source(0).is_none());
    assert!(cache.sum_known("a").is_none());
}
