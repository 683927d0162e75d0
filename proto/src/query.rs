//! What a query may ask of the cluster: the limits every root and every leaf check before any
//! work or fan-out, and the one safe way to parse a query.
//!
//! The query grammar (tantivy's) is a recursive-descent parser: every nested `(` or `NOT`
//! costs stack frames, and about 2,100 levels overflow a 2 MiB thread stack, which aborts the
//! whole process. A root that forwarded such a query, then retried and hedged it, would take
//! down every replica of every shard. So [`parse`]:
//!
//! 1. refuses a query over [`QueryLimits::max_bytes`] before reading it;
//! 2. counts the `(` and `NOT`s in the text, an upper bound of the parser's recursion whatever
//!    the quoting, and refuses a query with more than [`NESTING_PER_DEPTH`] per level of
//!    [`QueryLimits::max_depth`] (the parser's time grows with the square of the nesting);
//! 3. parses inline only when that bound is at most [`INLINE_NESTING`]; anything else is parsed
//!    on one long-lived thread with a stack large enough for the largest bound, where the tree
//!    is also measured and, if too deep, dropped;
//! 4. refuses a tree deeper than [`QueryLimits::max_depth`], so that everything downstream
//!    (tantivy's query building, weights, scorers, and dropping the tree) recurses at most that
//!    far on any thread;
//! 5. counts terms and wildcards against their limits, and refuses what the cluster would
//!    otherwise answer wrongly without a word: regular expressions and fuzzy terms (`python~1`).
//!
//! Every error names the limit and the value that broke it.

use std::sync::{mpsc, OnceLock};

use tantivy_query_grammar::Delimiter;
pub use tantivy_query_grammar::{UserInputAst, UserInputLeaf, UserInputLiteral};

/// Queries with at most this many `(` and `NOT`s together are parsed on the caller's thread: the
/// parser's recursion is bounded by that count, and a 2 MiB stack holds twice as many levels
/// even in a debug build (measured: 128 fit, 256 overflow).
pub const INLINE_NESTING: usize = 64;

/// How many `(` and `NOT`s together a query may have, per level of `max_depth`: more is refused
/// before parsing. The parser's time grows with the square of the nesting (16,000 levels take
/// minutes), and no query within `max_depth` needs this many.
pub const NESTING_PER_DEPTH: usize = 4;

/// Stack of the thread that parses a query which might nest deeply: the parser needs about
/// 1 KiB per level in a release build and up to 16 KiB in a debug build, and a query nests at
/// most [`NESTING_PER_DEPTH`] x [`MAX_QUERY_DEPTH_CEILING`] = 512 levels. Only the pages touched
/// cost memory.
const DEEP_PARSE_STACK: usize = 64 << 20;

/// Largest `max_bytes` a caller may configure.
pub const MAX_QUERY_BYTES_CEILING: usize = 1 << 20;

/// Largest `max_depth` a caller may configure. A tree this deep is built into a tantivy query,
/// run and dropped on ordinary 2 MiB threads, each step recursing once per level; a test runs
/// one on such a thread.
pub const MAX_QUERY_DEPTH_CEILING: usize = 128;

/// The limits a query must keep. Defaults are documented on each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Bytes of query text. Default 16,384; at most [`MAX_QUERY_BYTES_CEILING`].
    pub max_bytes: usize,
    /// Nesting of groups `( )`, `NOT` and boosts `^2`: a single term is 0 deep, `a b` 1,
    /// `a (b c)` 2 (a group around a single clause does not count). Default 32.
    pub max_depth: usize,
    /// Terms: every word of every term or phrase, every element of an `IN [..]` set, every range
    /// and `*`. Default 1,024.
    pub max_terms: usize,
    /// Wildcards: each run of `*` in a word (`pyth*` has one, `c*l*r` two), each of which
    /// expands to every matching term of the index. Default 8.
    pub max_wildcards: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 10,
            max_depth: 32,
            max_terms: 1_024,
            max_wildcards: 8,
        }
    }
}

/// The limits as command-line flags, the same for roots and leaves (and one environment
/// variable each for both, so that one setting covers the cluster).
#[derive(Clone, Debug, clap::Args)]
pub struct QueryLimitArgs {
    /// Longest query text, in bytes
    #[arg(long, env = "FANOUT_MAX_QUERY_BYTES", default_value_t = QueryLimits::default().max_bytes as u32,
          value_parser = clap::value_parser!(u32).range(1..=MAX_QUERY_BYTES_CEILING as i64))]
    pub max_query_bytes: u32,
    /// Deepest nesting of groups, NOT and boosts in a query: a single term is 0 deep, `a b` 1, `a (b c)` 2
    #[arg(long, env = "FANOUT_MAX_QUERY_DEPTH", default_value_t = QueryLimits::default().max_depth as u32,
          value_parser = clap::value_parser!(u32).range(1..=MAX_QUERY_DEPTH_CEILING as i64))]
    pub max_query_depth: u32,
    /// Most terms in a query: every word of a term or phrase, every element of a set, every range
    #[arg(long, env = "FANOUT_MAX_QUERY_TERMS", default_value_t = QueryLimits::default().max_terms as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_query_terms: u32,
    /// Most wildcards (each run of `*` in a word: `pyth*` has one) in a query; each expands to every matching term of a field
    #[arg(long, env = "FANOUT_MAX_QUERY_WILDCARDS", default_value_t = QueryLimits::default().max_wildcards as u32)]
    pub max_query_wildcards: u32,
}

impl QueryLimitArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> QueryLimits {
        QueryLimits {
            max_bytes: self.max_query_bytes as usize,
            max_depth: self.max_query_depth as usize,
            max_terms: self.max_query_terms as usize,
            max_wildcards: self.max_query_wildcards as usize,
        }
    }
}

/// Why a query was refused. Every variant but [`QueryError::Internal`] is the caller's to fix:
/// an HTTP 400, a gRPC INVALID_ARGUMENT, never a replica failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("q is {bytes} bytes long; the limit is {limit} (max_query_bytes)")]
    /// q is longer than max_query_bytes.
    TooLong {
        /// The query's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    #[error("q nests {depth} levels deep; the limit is {limit} (max_query_depth)")]
    /// q nests deeper than max_query_depth.
    TooDeep {
        /// How deep it nests.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    #[error(
        "q has {nesting} `(` and `NOT`s together; the limit is {limit} \
         ({NESTING_PER_DEPTH} x max_query_depth)"
    )]
    /// q has more `(` and `NOT`s than the parser is given.
    TooMuchNesting {
        /// `(` and `NOT`s counted.
        nesting: usize,
        /// The limit.
        limit: usize,
    },
    #[error("q has {terms} terms; the limit is {limit} (max_query_terms)")]
    /// q has more terms than max_query_terms.
    TooManyTerms {
        /// Terms counted.
        terms: usize,
        /// The limit.
        limit: usize,
    },
    #[error("q has {wildcards} wildcard terms; the limit is {limit} (max_query_wildcards)")]
    /// q has more wildcards than max_query_wildcards.
    TooManyWildcards {
        /// Wildcards counted.
        wildcards: usize,
        /// The limit.
        limit: usize,
    },
    /// q does not parse: where and why.
    #[error("invalid query: {0}")]
    Syntax(String),
    /// q uses a form fanout does not run (fuzzy, regex, leading wildcard): why.
    #[error("unsupported query: {0}")]
    Unsupported(String),
    /// The server could not parse: not the caller's fault.
    #[error("the query parser is unavailable: {0}")]
    Internal(String),
}

impl QueryError {
    /// Whether the caller can fix this by changing the query (every variant but
    /// [`QueryError::Internal`]).
    pub fn is_callers(&self) -> bool {
        !matches!(self, QueryError::Internal(_))
    }
}

/// A query that kept the limits, parsed.
#[derive(Debug)]
pub struct CheckedQuery {
    /// The parsed query.
    pub ast: UserInputAst,
    /// Its nesting depth (see [`QueryLimits::max_depth`]).
    pub depth: usize,
}

/// Parses `query` within `limits`; see the module documentation for how this stays safe on any
/// input.
pub fn parse(query: &str, limits: &QueryLimits) -> Result<CheckedQuery, QueryError> {
    if query.len() > limits.max_bytes {
        return Err(QueryError::TooLong {
            bytes: query.len(),
            limit: limits.max_bytes,
        });
    }
    let nesting = nesting_bound(query);
    let most = NESTING_PER_DEPTH * limits.max_depth.min(MAX_QUERY_DEPTH_CEILING);
    if nesting > most {
        return Err(QueryError::TooMuchNesting {
            nesting,
            limit: most,
        });
    }
    if nesting <= INLINE_NESTING {
        return parse_and_measure(query, limits);
    }
    parse_deep(query, limits)
}

/// A query for the deep-parse thread, and where its answer goes.
type DeepJob = (
    String,
    QueryLimits,
    mpsc::SyncSender<Result<CheckedQuery, QueryError>>,
);

/// Parses on the one deep-parse thread, started on first use and kept: such queries are rare,
/// and a thread with a large stack is not worth starting per request.
fn parse_deep(query: &str, limits: &QueryLimits) -> Result<CheckedQuery, QueryError> {
    static DEEP: OnceLock<Option<mpsc::Sender<DeepJob>>> = OnceLock::new();
    let jobs = DEEP.get_or_init(|| {
        let (jobs, incoming) = mpsc::channel::<DeepJob>();
        std::thread::Builder::new()
            .name("fanout-deep-parse".into())
            .stack_size(DEEP_PARSE_STACK)
            .spawn(move || {
                for (query, limits, reply) in incoming {
                    let parsed = std::panic::catch_unwind(|| parse_and_measure(&query, &limits))
                        .unwrap_or_else(|_| {
                            Err(QueryError::Internal("the parser panicked".into()))
                        });
                    let _ = reply.send(parsed);
                }
            })
            .ok()
            .map(|_| jobs)
    });
    let unavailable = || QueryError::Internal("the deep-parse thread is not running".into());
    let jobs = jobs.as_ref().ok_or_else(unavailable)?;
    let (reply, answer) = mpsc::sync_channel(1);
    jobs.send((query.to_string(), *limits, reply))
        .map_err(|_| unavailable())?;
    answer.recv().map_err(|_| unavailable())?
}

/// An upper bound of how deep the parser will recurse on `query`: it recurses once per `(` it
/// opens and once per `NOT` keyword, so counting every `(` and every `NOT` in the text bounds
/// it, however quotes, escapes or regexes hide some of them from the parser.
pub fn nesting_bound(query: &str) -> usize {
    query.bytes().filter(|&b| b == b'(').count() + query.matches("NOT").count()
}

fn parse_and_measure(query: &str, limits: &QueryLimits) -> Result<CheckedQuery, QueryError> {
    let ast = tantivy_query_grammar::parse_query(query).map_err(|_| syntax_error(query))?;
    let depth = depth(&ast);
    if depth > limits.max_depth {
        // Dropped here: on the deep-parse thread when it is deep.
        return Err(QueryError::TooDeep {
            depth,
            limit: limits.max_depth,
        });
    }
    let mut count = Count::default();
    count.walk(&ast)?;
    if count.terms > limits.max_terms {
        return Err(QueryError::TooManyTerms {
            terms: count.terms,
            limit: limits.max_terms,
        });
    }
    if count.wildcards > limits.max_wildcards {
        return Err(QueryError::TooManyWildcards {
            wildcards: count.wildcards,
            limit: limits.max_wildcards,
        });
    }
    Ok(CheckedQuery { ast, depth })
}

/// The lenient parser's first complaint, which says where and what, or a plain message.
fn syntax_error(query: &str) -> QueryError {
    let (_, errors) = tantivy_query_grammar::parse_query_lenient(query);
    QueryError::Syntax(match errors.first() {
        Some(e) => format!("syntax error at byte {}: {}", e.pos, e.message),
        None => "syntax error".into(),
    })
}

/// Nesting depth: 0 for a single term, one more per level of clauses (a group or a `NOT`) and
/// per boost, which tantivy keeps as a layer of its own however it nests.
fn depth(ast: &UserInputAst) -> usize {
    match ast {
        UserInputAst::Leaf(_) => 0,
        UserInputAst::Boost(inner, _) => 1 + depth(inner),
        UserInputAst::Clause(clauses) => {
            1 + clauses
                .iter()
                .map(|(_, c)| depth(c))
                .max()
                .unwrap_or_default()
        }
    }
}

/// The largest boost a query may give: far past any useful weight, far from infinity.
const MAX_BOOST: f64 = 1e6;

#[derive(Default)]
struct Count {
    terms: usize,
    wildcards: usize,
}

impl Count {
    fn walk(&mut self, ast: &UserInputAst) -> Result<(), QueryError> {
        match ast {
            UserInputAst::Leaf(leaf) => self.leaf(leaf),
            UserInputAst::Boost(inner, boost) => {
                // A boost so large it is infinite scores 0 x inf = NaN for a zero-boosted
                // part: no order can rank that.
                let boost = f64::from(*boost);
                if !boost.is_finite() || boost > MAX_BOOST {
                    return Err(QueryError::Unsupported(format!(
                        "a boost must be a number from 0 to {MAX_BOOST}, got {boost}"
                    )));
                }
                self.walk(inner)
            }
            UserInputAst::Clause(clauses) => {
                clauses.iter().try_for_each(|(_, clause)| self.walk(clause))
            }
        }
    }

    fn leaf(&mut self, leaf: &UserInputLeaf) -> Result<(), QueryError> {
        match leaf {
            UserInputLeaf::Literal(literal) => {
                self.terms += words(&literal.phrase).max(1);
                match word_kind(literal) {
                    WordKind::Plain => {}
                    WordKind::Wildcard => self.wildcards += star_runs(&literal.phrase),
                    WordKind::Fuzzy => {
                        return Err(QueryError::Unsupported(format!(
                            "fuzzy terms such as {:?} are not supported; `~N` after a quoted \
                             phrase sets its slop (\"big dog\"~2)",
                            literal.phrase
                        )))
                    }
                    WordKind::LeadingWildcard => {
                        return Err(QueryError::Unsupported(format!(
                            "{:?} starts with a wildcard, which would scan every term of the \
                             index; put at least one character before `*`",
                            literal.phrase
                        )))
                    }
                }
            }
            UserInputLeaf::Set { elements, .. } => self.terms += elements.len().max(1),
            UserInputLeaf::Range { .. } | UserInputLeaf::All | UserInputLeaf::Exists { .. } => {
                self.terms += 1
            }
            UserInputLeaf::Regex { pattern, .. } => {
                return Err(QueryError::Unsupported(format!(
                    "regular expressions (/{pattern}/) are not supported; a word with `*` \
                     matches by wildcard (pyth*)"
                )))
            }
        }
        Ok(())
    }
}

/// Words of a phrase as most tokenizers split it: runs of letters and digits.
fn words(phrase: &str) -> usize {
    phrase
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count()
}

/// What an unquoted word asks for beyond itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordKind {
    /// A term or phrase as the tokenizer reads it.
    Plain,
    /// A word with `*`: every term matching it (`pyth*`, `col*r`).
    Wildcard,
    /// A word beginning with `*`: refused.
    LeadingWildcard,
    /// `word~N`: refused (fuzzy matching is not supported).
    Fuzzy,
}

/// What kind of word `literal` is. The grammar keeps `*` and `~` inside an unquoted word, so
/// without this `pyth*` would silently search for the term `pyth` and `python~1` for the
/// phrase "python 1".
pub fn word_kind(literal: &UserInputLiteral) -> WordKind {
    if literal.delimiter != Delimiter::None {
        return WordKind::Plain;
    }
    let phrase = literal.phrase.as_str();
    if let Some((word, distance)) = phrase.rsplit_once('~') {
        if !word.is_empty() && !distance.is_empty() && distance.bytes().all(|b| b.is_ascii_digit())
        {
            return WordKind::Fuzzy;
        }
    }
    match phrase.find('*') {
        None => WordKind::Plain,
        Some(0) => WordKind::LeadingWildcard,
        Some(_) => WordKind::Wildcard,
    }
}

/// Runs of `*` in a word: `pyth*` has one, `c**l*r` two.
fn star_runs(word: &str) -> usize {
    word.match_indices('*')
        .filter(|&(i, _)| i == 0 || word.as_bytes()[i - 1] != b'*')
        .count()
}

/// The regular expression, over indexed terms, that a wildcard word matches: its literal parts
/// escaped, and lowercased when the field's tokenizer lowercases what it indexes; each run of
/// `*` any run of characters.
pub fn wildcard_pattern(word: &str, lowercase: bool) -> String {
    let mut pattern = String::with_capacity(word.len() + 8);
    for (i, part) in word.split('*').enumerate() {
        if i > 0 && !pattern.ends_with(".*") {
            pattern.push_str(".*");
        }
        if lowercase {
            pattern.push_str(&regex_syntax::escape(&part.to_lowercase()));
        } else {
            pattern.push_str(&regex_syntax::escape(part));
        }
    }
    pattern
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
