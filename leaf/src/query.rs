//! From query text to a tantivy query, within the contract's limits ([`fanout_proto::query`]).
//!
//! Anything can call a leaf's gRPC port, so a leaf checks every query again, whatever a root
//! checked. Beyond tantivy's own parser this adds what the grammar leaves silently wrong:
//! a word with `*` is a wildcard over the field's indexed terms (`pyth*`), and `field:*` on a
//! field that is not fast is refused with a reason instead of failing the search as if the
//! replica were broken.

use fanout_proto::query::{self, QueryLimits, WordKind};
use tantivy::query::{BooleanQuery, Occur as ClauseOccur, Query, QueryParser};
use tantivy::query_grammar::{Occur, UserInputAst, UserInputLeaf};
use tantivy::schema::Schema;
use tantivy::Index;

use crate::error::LeafError;
use crate::schema::SchemaConfig;

/// Builds a shard's queries.
pub struct QueryBuilder {
    parser: QueryParser,
    schema: Schema,
    /// Where a term without a field is searched.
    default_fields: Vec<String>,
    limits: QueryLimits,
}

impl QueryBuilder {
    /// A builder for `index`'s schema, searching `config`'s default fields.
    pub fn new(index: &Index, config: &SchemaConfig, limits: QueryLimits) -> Self {
        let schema = index.schema();
        let mut parser = QueryParser::for_index(index, config.default_search_fields(&schema));
        // Users cannot write a regex (the check refuses them); wildcards become one.
        parser.allow_regexes();
        Self {
            parser,
            schema,
            default_fields: config.default_fields.clone(),
            limits,
        }
    }

    /// Checks and parses `text`: every error is the caller's (INVALID_ARGUMENT).
    pub fn build(&self, text: &str) -> Result<Box<dyn Query>, LeafError> {
        let checked = query::parse(text, &self.limits)?;
        let ast = self.rewrite(checked.ast)?;
        let query = self
            .parser
            .build_query_from_user_input_ast(ast)
            .map_err(|e| LeafError::InvalidQuery(e.to_string()))?;
        Ok(pair_required(query))
    }

    /// Wildcard words become regular expressions over their fields' terms; `field:*` must name a
    /// fast field. The tree is at most `max_depth` deep, so recursing is safe.
    fn rewrite(&self, ast: UserInputAst) -> Result<UserInputAst, LeafError> {
        Ok(match ast {
            UserInputAst::Clause(clauses) => UserInputAst::Clause(
                clauses
                    .into_iter()
                    .map(|(occur, clause)| Ok((occur, self.rewrite(clause)?)))
                    .collect::<Result<_, LeafError>>()?,
            ),
            UserInputAst::Boost(inner, boost) => {
                UserInputAst::Boost(Box::new(self.rewrite(*inner)?), boost)
            }
            UserInputAst::Leaf(leaf) => match *leaf {
                UserInputLeaf::Literal(literal)
                    if query::word_kind(&literal) == WordKind::Wildcard =>
                {
                    let regex = |field: String| {
                        let pattern =
                            query::wildcard_pattern(&literal.phrase, self.lowercases(&field));
                        UserInputAst::from(UserInputLeaf::Regex {
                            field: Some(field),
                            pattern,
                        })
                    };
                    match literal.field_name {
                        Some(field) => regex(field),
                        None => UserInputAst::Clause(
                            self.default_fields
                                .iter()
                                .map(|field| (Some(Occur::Should), regex(field.clone())))
                                .collect(),
                        ),
                    }
                }
                UserInputLeaf::Exists { field } => {
                    self.check_exists(&field)?;
                    UserInputAst::from(UserInputLeaf::Exists { field })
                }
                other => UserInputAst::from(other),
            },
        })
    }

    /// Whether `field`'s tokenizer lowercases what it indexes: all but `raw` (keyword fields,
    /// ids) do, and a wildcard must match the terms as they were indexed.
    fn lowercases(&self, name: &str) -> bool {
        let Some((field, _)) = self.schema.find_field(name) else {
            return true;
        };
        match self.schema.get_field_entry(field).field_type() {
            tantivy::schema::FieldType::Str(options) => options
                .get_indexing_options()
                .is_none_or(|indexing| indexing.tokenizer() != "raw"),
            _ => true,
        }
    }

    fn check_exists(&self, name: &str) -> Result<(), LeafError> {
        let Some((field, _)) = self.schema.find_field(name) else {
            return Err(LeafError::InvalidQuery(format!(
                "field does not exist: {name:?}"
            )));
        };
        if !self.schema.get_field_entry(field).is_fast() {
            return Err(LeafError::InvalidQuery(format!(
                "{name}:* (documents that have the field) needs a fast field, and {name:?} is \
                 not one; mark it `fast` in the schema"
            )));
        }
        Ok(())
    }
}

/// Rewrites every conjunction of three or more required clauses into nested pairs:
/// `+a +b +c` scores as `a + (b + c)`. Tantivy adds the scores of a conjunction's clauses in the
/// order of their cost in each segment (rarest first), and floating-point addition is not
/// associative, so the same document could score a bit differently on another segment layout
/// and swap places with a tie. Two operands add up the same in either order. (Optional clauses
/// are added in the query's order whatever the segment, so they need nothing.) The tree is as
/// deep as the query, which the parser's limits bound.
fn pair_required(query: Box<dyn Query>) -> Box<dyn Query> {
    let Some(boolean) = query.downcast_ref::<BooleanQuery>() else {
        return query;
    };
    let mut required = Vec::new();
    let mut others = Vec::new();
    for (occur, clause) in boolean.clauses() {
        let clause = pair_required(clause.box_clone());
        match occur {
            ClauseOccur::Must => required.push(clause),
            _ => others.push((*occur, clause)),
        }
    }
    if required.len() >= 3 {
        // The first stays; the rest fold from the right: b ∧ (c ∧ …).
        let mut rest = required.pop().expect("three or more");
        while required.len() > 1 {
            let next = required.pop().expect("more than one");
            rest = Box::new(BooleanQuery::intersection(vec![next, rest]));
        }
        required.push(rest);
    }
    let mut clauses: Vec<(ClauseOccur, Box<dyn Query>)> = required
        .into_iter()
        .map(|clause| (ClauseOccur::Must, clause))
        .collect();
    clauses.extend(others);
    let mut paired = BooleanQuery::new(clauses);
    paired.set_minimum_number_should_match(boolean.get_minimum_number_should_match());
    Box::new(paired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ShardIndex, WriterOptions};

    fn index() -> ShardIndex {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        index
            .index_batch(
                0,
                0,
                &[
                    r#"{"id": "a", "title": "Python programming", "body": "snakes"}"#,
                    r#"{"id": "b", "title": "Pythons", "body": "large snakes"}"#,
                    r#"{"id": "c", "title": "Perl", "body": "camels"}"#,
                ],
            )
            .unwrap();
        index.commit().unwrap();
        index
    }

    fn ids(index: &ShardIndex, q: &str) -> Vec<String> {
        let mut ids: Vec<String> = index
            .search(q, 0, 10, None, &crate::collect::Interrupt::never())
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn wildcards_match_terms_by_pattern() {
        let index = index();
        assert_eq!(ids(&index, "pyth*"), ["a", "b"]);
        assert_eq!(ids(&index, "title:PYTH*"), ["a", "b"]);
        assert_eq!(ids(&index, "p*l"), ["c"]);
        assert_eq!(ids(&index, "+pyth* +large"), ["b"]);
        assert_eq!(ids(&index, "body:pyth*"), Vec::<String>::new());
    }

    #[test]
    fn a_wildcard_on_a_raw_field_keeps_its_case() {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        index
            .index_batch(
                0,
                0,
                &[
                    r#"{"id": "AB1", "title": "x"}"#,
                    r#"{"id": "ab2", "title": "x"}"#,
                ],
            )
            .unwrap();
        index.commit().unwrap();
        assert_eq!(ids(&index, "id:AB*"), ["AB1"]);
        assert_eq!(ids(&index, "id:ab*"), ["ab2"]);
    }

    #[test]
    fn a_tree_at_the_deepest_allowed_nesting_runs_on_a_small_stack() {
        // The deepest tree any flag allows is built into a tantivy query, run and dropped on a
        // thread with the stack tokio's blocking pool gives a search.
        let mut index = index();
        let depth = fanout_proto::query::MAX_QUERY_DEPTH_CEILING;
        index.set_query_limits(QueryLimits {
            max_depth: depth,
            ..QueryLimits::default()
        });
        let deep = format!(
            "{}perl snakes{}",
            "python (".repeat(depth - 1),
            ")".repeat(depth - 1)
        );
        let found = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || ids(&index, &deep))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(found, ["a", "b", "c"]);
    }

    #[test]
    fn caller_errors_are_invalid_queries() {
        let index = index();
        for q in ["title:*", "python~1", "title:/py.*/", "*thon", "nosuch:*"] {
            let err = index
                .search(q, 0, 10, None, &crate::collect::Interrupt::never())
                .unwrap_err();
            assert!(
                matches!(err, LeafError::InvalidQuery(_) | LeafError::Query(_)),
                "{q}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod pairing_tests {
    use super::*;
    use tantivy::query::TermQuery;
    use tantivy::schema::{IndexRecordOption, TEXT};
    use tantivy::Term;

    /// The clauses of a boolean query, as (occur, nested clause count or 0 for a leaf).
    fn shape(query: &dyn Query) -> Vec<(ClauseOccur, usize)> {
        let boolean = query.downcast_ref::<BooleanQuery>().unwrap();
        boolean
            .clauses()
            .iter()
            .map(|(occur, clause)| {
                let nested = clause
                    .downcast_ref::<BooleanQuery>()
                    .map_or(0, |b| b.clauses().len());
                (*occur, nested)
            })
            .collect()
    }

    #[test]
    fn three_required_clauses_become_nested_pairs_and_the_rest_stays() {
        let mut schema = Schema::builder();
        let body = schema.add_text_field("body", TEXT);
        let term = |t: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(body, t),
                IndexRecordOption::WithFreqs,
            ))
        };
        let query: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (ClauseOccur::Must, term("a")),
            (ClauseOccur::Should, term("s")),
            (ClauseOccur::Must, term("b")),
            (ClauseOccur::MustNot, term("n")),
            (ClauseOccur::Must, term("c")),
            (ClauseOccur::Must, term("d")),
        ]));
        let paired = pair_required(query);
        use ClauseOccur::*;
        // a, then b ∧ (c ∧ d); the optional and excluded clauses as they were.
        assert_eq!(
            shape(&*paired),
            [(Must, 0), (Must, 2), (Should, 0), (MustNot, 0)]
        );
        let boolean = paired.downcast_ref::<BooleanQuery>().unwrap();
        assert_eq!(shape(&*boolean.clauses()[1].1), [(Must, 0), (Must, 2)]);
        // Two required clauses add up the same in either order: left as they are.
        let two: Box<dyn Query> = Box::new(BooleanQuery::intersection(vec![term("a"), term("b")]));
        assert_eq!(shape(&*pair_required(two)), [(Must, 0), (Must, 0)]);
    }
}
