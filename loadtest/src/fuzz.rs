//! Hostile requests, and what a cluster may answer them.
//!
//! [`case`] generates HTTP searches meant to hurt: deep nesting, long `NOT` and boost chains,
//! tens of thousands of terms, wildcards, the forms the parser refuses, random bytes of the
//! query grammar, and nonsense or extreme parameters, sent as GET or as a JSON body.
//! [`leaf_case`] does the same for a leaf's gRPC port, which a root does not guard: extreme
//! sizes and offsets, no deadline, and forged BM25 statistics. [`judge`] says whether an
//! answer is one a healthy cluster may give.
//!
//! The bounded run is a test (`loadtest/tests/fuzz.rs`); `fanout-loadtest fuzz` runs the same
//! cases against a cluster of real processes for as long as asked, watching their memory.

use fanout_proto::pb::{CorpusStats, FieldStat, SearchAfter, SearchRequest, TermStat};
use proptest::prelude::*;
use serde_json::Value;

/// One hostile HTTP search.
#[derive(Debug, Clone)]
pub struct Case {
    /// Sent as a JSON body to `POST /v1/search` when true, else as a GET's query string.
    pub post: bool,
    /// The parameters, by name.
    pub params: Vec<(String, String)>,
}

impl Case {
    /// The request, ready to send to the root at `base`.
    pub fn request(&self, client: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
        let request = self.build(client, base);
        // Far past any deadline the root allows: a root that takes this long is hung.
        request.timeout(std::time::Duration::from_secs(60))
    }

    fn build(&self, client: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
        let url = format!("{base}/v1/search");
        if !self.post {
            // Past 64 KiB a URI cannot be sent at all (the `http` crate refuses it), so such a
            // case goes as a body instead.
            let get = reqwest::Url::parse_with_params(&url, &self.params).ok();
            if let Some(get) = get.filter(|u| u.as_str().len() < u16::MAX as usize - 1) {
                return client.get(get);
            }
        }
        // Numbers and booleans go as JSON values, the rest as strings, as a client would.
        let body: serde_json::Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::from_str(v).unwrap_or(Value::from(v.clone())),
                )
            })
            .collect();
        client.post(url).json(&body)
    }
}

/// Words of the demo corpus and of nothing, to build queries from.
const WORDS: &[&str] = &[
    "cold", "wind", "red", "wine", "python", "the", "a", "of", "zzzzqx", "déjà", "東京", "x",
];

/// Queries the parser refuses, or that once hurt: each a documented limit or refusal.
const SPECIAL: &[&str] = &[
    "python~1",
    "python~",
    "/reg.*x/",
    "title:*",
    "body:*",
    "id:*",
    "nosuch:*",
    "*",
    "* *",
    "+*",
    "-*",
    "*a",
    "?",
    "[a TO z]",
    "title:[a TO b}",
    "{* TO *}",
    "\"unterminated",
    "\"\"",
    "a^1e308",
    "a^NaN",
    "a^-1",
    "a^",
    "^",
    "nosuch:field",
    ":",
    "::",
    "\\",
    "\0",
    "AND",
    "OR OR",
    "NOT",
    "NOT NOT",
    "()",
    ")(",
    "title:",
    "title:()",
    "+-a",
    "a:b:c",
    "IN [a b]",
    "title: IN [a b c]",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\u{feff}",
    "a\u{0}b",
    "\"a b\"~1000000",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_string)
}

/// Nesting: the query of death was about 2,100 `(`, balanced or not, with or without a field.
fn nested() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(&["", "title:", "body:", "+", "-", "NOT ", "id:"][..]);
    (prefix, 0usize..5_000, any::<bool>(), word()).prop_map(|(prefix, depth, balanced, w)| {
        let close = if balanced {
            ")".repeat(depth)
        } else {
            String::new()
        };
        format!("{}{w}{close}", format!("{prefix}(").repeat(depth))
    })
}

/// Long `NOT` chains and nested boosts, which nest without parentheses or around them.
fn chained() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..3_000, word()).prop_map(|(n, w)| format!("{}{w}", "NOT ".repeat(n))),
        (0usize..2_000, word()).prop_map(|(n, w)| format!(
            "{}{w}{}",
            "(".repeat(n),
            ")^1.5".repeat(n)
        )),
    ]
}

/// Words with wildcards: `co*`, `*`, `c*x*`.
fn wildcards() -> impl Strategy<Value = String> {
    let stars = prop::sample::select(&["*", "*x*", "?", "**", ""][..]);
    prop::collection::vec((word(), stars), 1..16).prop_map(|ws| {
        ws.iter()
            .map(|(w, star)| format!("{}{star}", w.chars().take(2).collect::<String>()))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Random text over the query grammar's own characters.
fn grammar_soup() -> impl Strategy<Value = String> {
    let chars: Vec<char> = "()[]{}\"+-:*^~\\/!? ANDORTnotitle:body0.9é\u{0}"
        .chars()
        .collect();
    prop::collection::vec(prop::sample::select(chars), 0..400)
        .prop_map(|cs| cs.into_iter().collect())
}

/// A hostile `q`.
pub fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        // Plain searches, so that many cases reach the engine.
        3 => prop::collection::vec(word(), 1..4).prop_map(|ws| ws.join(" ")),
        1 => nested(),
        1 => chained(),
        // Breadth: many terms, past the byte and term limits.
        1 => prop::collection::vec(word(), 0..6_000).prop_map(|ws| ws.join(" ")),
        1 => wildcards(),
        1 => prop::sample::select(SPECIAL).prop_map(str::to_string),
        1 => grammar_soup(),
        1 => ".{0,200}",
    ]
}

/// A parameter's value: sensible, extreme, or not a value at all.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0u64..30).prop_map(|n| n.to_string()),
        1 => (0u64..20_000).prop_map(|n| n.to_string()),
        1 => prop::sample::select(
            &["-1", "0", "1e3", "abc", "", "99999999999999999999", "4294967295", "1.5", "null"][..]
        )
        .prop_map(str::to_string),
    ]
}

fn flag() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(&["true", "false"][..]),
        1 => prop::sample::select(&["1", "yes", "", "null"][..]),
    ]
    .prop_map(str::to_string)
}

/// A hostile HTTP search.
pub fn case() -> impl Strategy<Value = Case> {
    let optional = |s: BoxedStrategy<String>| prop::option::weighted(0.4, s);
    (
        any::<bool>(),
        prop::option::weighted(0.95, query()),
        optional(number().boxed()),
        optional(number().boxed()),
        optional(number().boxed()),
        optional(flag().boxed()),
        optional(flag().boxed()),
        optional(
            prop::sample::select(&["global", "shard", "global", "x"][..])
                .prop_map(str::to_string)
                .boxed(),
        ),
        prop::option::weighted(0.03, Just("1".to_string())),
        prop::option::weighted(
            0.1,
            prop_oneof![
                Just("v1.3f8000006162".to_string()),
                "v1\\.[0-9a-f]{0,40}",
                ".{0,40}"
            ],
        ),
    )
        .prop_map(
            |(post, q, size, from, timeout, hedge, partial, stats, unknown, after)| {
                let named = [
                    ("q", q),
                    ("size", size),
                    ("from", from),
                    ("timeout_ms", timeout),
                    ("hedge", hedge),
                    ("allow_partial", partial),
                    ("stats", stats),
                    ("no_such_parameter", unknown),
                    ("search_after", after),
                ];
                let params = named
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v?)))
                    .collect();
                Case { post, params }
            },
        )
}

/// A hostile request straight to a leaf's gRPC port.
pub fn leaf_case() -> impl Strategy<Value = SearchRequest> {
    let extreme = || {
        prop_oneof![
            6 => 0u32..50,
            1 => 0u32..20_000,
            1 => Just(u32::MAX),
            1 => Just(u32::MAX / 2),
        ]
    };
    let stats = (
        prop_oneof![Just(0u64), 1u64..1_000, Just(u64::MAX)],
        prop::collection::vec(
            (
                prop::sample::select(&["title", "body", "id", "nosuch"][..]),
                prop_oneof![Just(0u64), 1u64..1_000_000, Just(u64::MAX)],
            ),
            0..4,
        ),
        prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 0..12),
                prop_oneof![Just(0u64), 1u64..100, Just(u64::MAX)],
            ),
            0..6,
        ),
    )
        .prop_map(|(num_docs, fields, terms)| CorpusStats {
            num_docs,
            fields: fields
                .into_iter()
                .map(|(field, total_tokens)| FieldStat {
                    field: field.to_string(),
                    total_tokens,
                })
                .collect(),
            terms: terms
                .into_iter()
                .map(|(term, doc_freq)| TermStat { term, doc_freq })
                .collect(),
        });
    (
        query(),
        extreme(),
        extreme(),
        prop_oneof![Just(0u32), 1u32..3_000],
        prop::option::of(stats),
        prop::option::weighted(0.2, (any::<f32>(), ".{0,40}")),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(query, size, from, timeout_ms, global_stats, after, stats_generation)| {
                SearchRequest {
                    query,
                    size,
                    from,
                    timeout_ms,
                    global_stats,
                    search_after: after.map(|(score, id)| SearchAfter { score, id }),
                    stats_generation,
                }
            },
        )
}

/// Whether `status` and `body` are an answer a healthy cluster may give to a hostile request:
/// a result, or the API's JSON error for the caller's mistake or a missed deadline. Never a
/// 500, never a refusal that says a replica broke, never a body that is not the API's.
pub fn judge(status: u16, body: &[u8]) -> Result<(), String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{status} with a body that is not JSON ({e}): {}",
            snippet(body)
        )
    })?;
    match status {
        200 if json["hits"].is_array() => {
            // A shard missing for its deadline is fine; one missing because a replica broke,
            // failed or could not be reached is not, on a cluster that was healthy.
            let failures = json["shards"]["failed"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match failures.iter().find(|f| {
                let reason = f["reason"].as_str().unwrap_or_default();
                BROKEN.iter().any(|b| reason.contains(b))
            }) {
                Some(failure) => Err(format!("a shard failed: {failure}")),
                None => Ok(()),
            }
        }
        400 | 404 | 405 | 408 | 413 | 414 | 415 | 422 | 431 | 503 | 504
            if json["error"]["status"] == status
                && json["error"]["reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()) =>
        {
            let reason = json["error"]["reason"].as_str().unwrap_or_default();
            match BROKEN.iter().find(|b| reason.contains(*b)) {
                Some(_) => Err(format!(
                    "{status} because a replica broke or failed: {reason}"
                )),
                None => Ok(()),
            }
        }
        _ => Err(format!("{status}: {}", snippet(body))),
    }
}

/// What the root says of a shard whose replica broke, failed or was unreachable.
const BROKEN: &[&str] = &["connection broke", "leaf error", "replica unavailable"];

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// The gRPC codes a leaf may answer a hostile request with: the caller's mistake, or its
/// deadline. `Internal` or `Unknown` would mean a bug; `Unavailable` a dead leaf.
pub fn leaf_code_is_fine(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Ok
            | tonic::Code::InvalidArgument
            | tonic::Code::DeadlineExceeded
            | tonic::Code::ResourceExhausted
            | tonic::Code::OutOfRange
            | tonic::Code::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judge_tells_errors_apart() {
        let error = |s: u16, reason: &str| {
            serde_json::json!({"error": {"status": s, "reason": reason}}).to_string()
        };
        assert!(judge(200, br#"{"hits": []}"#).is_ok());
        assert!(judge(400, error(400, "bad").as_bytes()).is_ok());
        assert!(judge(504, error(504, "late").as_bytes()).is_ok());
        assert!(judge(500, error(500, "oops").as_bytes()).is_err());
        assert!(judge(400, b"").is_err());
        assert!(judge(400, error(413, "mismatch").as_bytes()).is_err());
        assert!(judge(503, error(503, "a replica's connection broke").as_bytes()).is_err());
        assert!(judge(503, error(503, "shard 0: leaf error: boom").as_bytes()).is_err());
        assert!(judge(
            503,
            error(503, "shard 0: no answer within the deadline").as_bytes()
        )
        .is_ok());
        assert!(judge(200, b"{}").is_err());
        let late = r#"{"hits": [], "shards": {"failed": [{"shard": 1, "reason": "no answer within the deadline"}]}}"#;
        assert!(judge(200, late.as_bytes()).is_ok());
        let broken = r#"{"hits": [], "shards": {"failed": [{"shard": 1, "reason": "the replica's connection broke while"}]}}"#;
        assert!(judge(200, broken.as_bytes()).is_err());
    }
}
