use super::*;

fn limits() -> QueryLimits {
    QueryLimits::default()
}

#[test]
fn the_query_of_death_is_refused_not_parsed_on_a_small_stack() {
    // About 2,100 levels overflowed a worker's 2 MiB stack. These run on the test's own thread,
    // which has no more than that.
    for query in [
        "(".repeat(3_000),
        format!("title:{}", "(".repeat(3_000)),
        format!("{}\")\"", "(".repeat(3_000)),
        nested(3_000),
        "NOT ".repeat(3_000) + "a",
    ] {
        let err = parse(&query, &limits()).unwrap_err();
        assert!(matches!(err, QueryError::TooMuchNesting { .. }), "{err}");
    }
    // Groups around one clause fold away: deep to parse, flat to run.
    let folded = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(parse(&folded, &limits()).unwrap().depth, 0);
    assert_eq!(
        parse(&nested(40), &limits()).unwrap_err().to_string(),
        "q nests 40 levels deep; the limit is 32 (max_query_depth)"
    );
    assert_eq!(parse(&nested(32), &limits()).unwrap().depth, 32);
}

/// `a (a (a ...))`, `levels` deep.
fn nested(levels: usize) -> String {
    format!("{}b c{}", "a (".repeat(levels - 1), ")".repeat(levels - 1))
}

#[test]
fn nesting_past_what_any_limit_allows_is_refused_before_parsing() {
    // The parser's time grows with the square of the nesting: 16,000 levels took minutes.
    let limits = QueryLimits {
        max_bytes: MAX_QUERY_BYTES_CEILING,
        ..limits()
    };
    let query = nested(MAX_QUERY_BYTES_CEILING / 4 - 1);
    let started = std::time::Instant::now();
    let err = parse(&query, &limits).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("`(` and `NOT`s together; the limit is 128 (4 x max_query_depth)"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Just within the bound, a query is parsed (on the deep-parse thread) and measured.
    let err = parse(&nested(100), &limits).unwrap_err();
    assert_eq!(
        err,
        QueryError::TooDeep {
            depth: 100,
            limit: 32
        }
    );
}

#[test]
fn depth_counts_groups_and_not() {
    let depth = |q: &str| parse(q, &limits()).unwrap().depth;
    assert_eq!(depth("a"), 0);
    assert_eq!(depth("a b"), 1);
    assert_eq!(depth("a (b c)"), 2);
    assert_eq!(depth("a (b (c d))"), 3);
    assert_eq!(depth("NOT (NOT (a b))"), 3);
    // Boosts nest in tantivy's query as layers of their own.
    assert_eq!(depth("a^2"), 1);
    let boosts = format!("{}a{}", "(".repeat(40), "^2)".repeat(40));
    assert_eq!(
        parse(&boosts, &limits()).unwrap_err(),
        QueryError::TooDeep {
            depth: 40,
            limit: 32
        }
    );
}

#[test]
fn limits_name_themselves_and_the_value() {
    let err = parse(&"a".repeat(20_000), &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "q is 20000 bytes long; the limit is 16384 (max_query_bytes)"
    );
    // Distinct words: the grammar folds repeated clauses into one.
    let words: Vec<String> = (0..1_100).map(|i| format!("w{i}")).collect();
    let words = words.join(" ");
    let err = parse(&words, &limits()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "q has 1100 terms; the limit is 1024 (max_query_terms)"
    );
    let phrase = format!("\"{words}\"");
    assert!(matches!(
        parse(&phrase, &limits()).unwrap_err(),
        QueryError::TooManyTerms { terms: 1100, .. }
    ));
    let wild: Vec<String> = (0..9).map(|i| format!("a{i}*")).collect();
    let wild = wild.join(" ");
    assert_eq!(
        parse(&wild, &limits()).unwrap_err().to_string(),
        "q has 9 wildcard terms; the limit is 8 (max_query_wildcards)"
    );
}

#[test]
fn silent_wrong_answers_become_errors_or_wildcards() {
    let err = parse("python~1", &limits()).unwrap_err();
    assert!(err.to_string().contains("fuzzy"), "{err}");
    let err = parse("title:/pyth.*/", &limits()).unwrap_err();
    assert!(err.to_string().contains("regular expressions"), "{err}");
    let err = parse("*thon", &limits()).unwrap_err();
    assert!(err.to_string().contains("starts with a wildcard"), "{err}");
    // A quoted phrase's slop is not fuzziness; `*` alone matches everything.
    assert!(parse("\"big dog\"~2", &limits()).is_ok());
    assert!(parse("*", &limits()).is_ok());
    let checked = parse("pyth*", &limits()).unwrap();
    let UserInputAst::Leaf(leaf) = &checked.ast else {
        panic!("{:?}", checked.ast)
    };
    let UserInputLeaf::Literal(literal) = &**leaf else {
        panic!("{leaf:?}")
    };
    assert_eq!(word_kind(literal), WordKind::Wildcard);
}

#[test]
fn wildcard_patterns_escape_everything_but_the_wildcard() {
    assert_eq!(wildcard_pattern("pyth*", true), "pyth.*");
    assert_eq!(wildcard_pattern("Col*R", true), "col.*r");
    assert_eq!(wildcard_pattern("Col*R", false), "Col.*R");
    assert_eq!(wildcard_pattern("a.b*", true), "a\\.b.*");
    assert_eq!(wildcard_pattern("c++*", true), "c\\+\\+.*");
    // Runs of `*` are one wildcard; what regex syntax would not take escaped stays literal.
    assert_eq!(wildcard_pattern("a****b", true), "a.*b");
    assert_eq!(wildcard_pattern("x€<*", true), "x€<.*");
    for word in ["l’arbre*", "a<b*", "日本*", "a(b)*"] {
        let pattern = wildcard_pattern(word, true);
        assert!(
            regex_syntax::Parser::new().parse(&pattern).is_ok(),
            "{word} -> {pattern}"
        );
    }
}

#[test]
fn each_run_of_stars_is_one_wildcard() {
    assert_eq!(star_runs("pyth*"), 1);
    assert_eq!(star_runs("c**l*r"), 2);
    assert_eq!(star_runs("plain"), 0);
    let long = format!("a{}", "*".repeat(10_000));
    assert!(parse(&long, &limits()).is_ok(), "one run, however long");
    let many = format!("a{}", "b*".repeat(9));
    assert_eq!(
        parse(&many, &limits()).unwrap_err().to_string(),
        "q has 9 wildcard terms; the limit is 8 (max_query_wildcards)"
    );
}

#[test]
fn syntax_errors_say_where() {
    let err = parse("title:(apple", &limits()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid query: syntax error at byte "),
        "{err}"
    );
}

#[test]
fn nesting_bound_is_an_upper_bound_whatever_the_quoting() {
    assert_eq!(nesting_bound("a b"), 0);
    assert_eq!(nesting_bound("(a) \"(\" NOT b"), 3);
}

#[test]
fn boosts_are_finite_and_bounded() {
    let limits = QueryLimits::default();
    assert!(parse("a^2 (b c)^0.5", &limits).is_ok());
    let huge = format!("(*^0)^1{}", "0".repeat(39));
    let err = parse(&huge, &limits).unwrap_err();
    assert!(err.to_string().contains("boost"), "{err}");
    assert!(err.is_callers());
    assert!(parse("a^10000000", &limits).is_err());
}
