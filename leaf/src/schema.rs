//! The document schema: which fields a shard indexes and how, read from a small TOML file.
//!
//! ```toml
//! id_field = "id"                    # a keyword field; one value per document
//! default_fields = ["title", "body"] # searched by query terms that name no field
//!
//! [[field]]
//! name = "title"
//! type = "text"          # text | keyword | integer | float | date | boolean
//! tokenizer = "default"  # text only: default | en_stem | en | raw
//! stored = true          # returned with hits (default true)
//! indexed = true         # searchable (default true)
//! fast = false           # columnar, for sorting and filters (default false)
//! ```
//!
//! The id field is always fast, whatever the file says: every cut of a ranking breaks ties
//! between equal scores by id, read from its column.
//!
//! Document fields the schema does not name are ignored, so one schema can serve NDJSON with
//! extra attributes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, Schema,
    TextFieldIndexing, TextOptions,
};

/// The kind of values a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Full text, split into terms by the field's tokenizer.
    Text,
    /// A string indexed as one term: ids, tags, names.
    Keyword,
    /// A signed 64-bit integer.
    Integer,
    /// A 64-bit float.
    Float,
    /// An RFC 3339 timestamp, kept to the second.
    Date,
    /// `true` or `false`.
    Boolean,
}

/// One field of the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// The field's name in documents and queries.
    pub name: String,
    /// What it holds.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Returned with hits.
    #[serde(default = "yes")]
    pub stored: bool,
    /// Searchable.
    #[serde(default = "yes")]
    pub indexed: bool,
    /// Kept column-wise, for `field:*` and sorting.
    #[serde(default)]
    pub fast: bool,
    /// Text fields only: the tokenizer. `default` splits on non-alphanumerics and lowercases;
    /// `en_stem` also stems English (Porter); `en` also drops English stop words before
    /// stemming, the usual English analyzer for relevance; `raw` keeps the value as one term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
}

fn yes() -> bool {
    true
}

/// The schema file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The field that holds each document's id.
    pub id_field: String,
    /// Fields a query term without a field searches.
    pub default_fields: Vec<String>,
    /// Every field.
    #[serde(rename = "field")]
    pub fields: Vec<FieldConfig>,
}

/// What is wrong with a schema file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema file could not be read.
    #[error("cannot read schema file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The schema file is not valid TOML for a schema.
    #[error("invalid schema file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Where and why.
        source: toml::de::Error,
    },
    /// Two fields have this name.
    #[error("field {0:?} is defined twice")]
    Duplicate(String),
    /// The id field is not a stored, indexed keyword field.
    #[error("id field {0:?} must be a stored, indexed keyword field")]
    BadIdField(String),
    /// A default field is not an indexed text or keyword field.
    #[error("default field {0:?} must be an indexed text or keyword field of the schema")]
    BadDefaultField(String),
    /// A field names a tokenizer that does not exist.
    #[error("field {field:?}: unknown tokenizer {tokenizer:?} (known: default, en_stem, en, raw)")]
    UnknownTokenizer {
        /// The field.
        field: String,
        /// The tokenizer it names.
        tokenizer: String,
    },
    /// A field that is not text names a tokenizer.
    #[error("field {0:?}: only text fields take a tokenizer")]
    TokenizerOnNonText(String),
}

const TOKENIZERS: [&str; 4] = ["default", "en_stem", "en", "raw"];

/// Registers the tokenizers tantivy does not define itself on `index`: `en`, the English
/// analyzer (lowercase, stop words removed, Porter stemming).
pub fn register_tokenizers(index: &tantivy::Index) {
    use tantivy::tokenizer::{
        Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
        TextAnalyzer,
    };
    let mut english = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    if let Some(stop_words) = StopWordFilter::new(Language::English) {
        english = english.filter_dynamic(stop_words);
    }
    let english = english
        .filter_dynamic(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register("en", english);
}

impl Default for SchemaConfig {
    /// Fits the NDJSON corpora fanout ships and benchmarks with: `{id, title, body}`, plus the
    /// `author` and `date` of commit messages.
    fn default() -> Self {
        let field = |name: &str, field_type, fast| FieldConfig {
            name: name.into(),
            field_type,
            stored: true,
            indexed: true,
            fast,
            tokenizer: None,
        };
        SchemaConfig {
            id_field: "id".into(),
            default_fields: vec!["title".into(), "body".into()],
            fields: vec![
                field("id", FieldType::Keyword, false),
                field("title", FieldType::Text, false),
                field("body", FieldType::Text, false),
                field("author", FieldType::Text, false),
                field("date", FieldType::Date, true),
            ],
        }
    }
}

impl SchemaConfig {
    /// Reads and validates a schema file.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: name.clone(),
            source,
        })?;
        let config: SchemaConfig =
            toml::from_str(&text).map_err(|source| SchemaError::Parse { path: name, source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules a schema file must follow.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let mut names = std::collections::HashSet::new();
        for f in &self.fields {
            if !names.insert(f.name.as_str()) {
                return Err(SchemaError::Duplicate(f.name.clone()));
            }
            match (&f.tokenizer, f.field_type) {
                (Some(_), t) if t != FieldType::Text => {
                    return Err(SchemaError::TokenizerOnNonText(f.name.clone()))
                }
                (Some(t), _) if !TOKENIZERS.contains(&t.as_str()) => {
                    return Err(SchemaError::UnknownTokenizer {
                        field: f.name.clone(),
                        tokenizer: t.clone(),
                    })
                }
                _ => {}
            }
        }
        let field = |name: &str| self.fields.iter().find(|f| f.name == name);
        match field(&self.id_field) {
            Some(f) if f.field_type == FieldType::Keyword && f.stored && f.indexed => {}
            _ => return Err(SchemaError::BadIdField(self.id_field.clone())),
        }
        for name in &self.default_fields {
            match field(name) {
                Some(f)
                    if f.indexed
                        && matches!(f.field_type, FieldType::Text | FieldType::Keyword) => {}
                _ => return Err(SchemaError::BadDefaultField(name.clone())),
            }
        }
        Ok(())
    }

    /// The tantivy schema this configuration describes.
    pub fn build(&self) -> Schema {
        let mut builder = Schema::builder();
        for f in &self.fields {
            match f.field_type {
                FieldType::Text | FieldType::Keyword => {
                    let mut opts = TextOptions::default();
                    if f.indexed {
                        let (tokenizer, record) = match f.field_type {
                            FieldType::Keyword => ("raw", IndexRecordOption::Basic),
                            _ => (
                                f.tokenizer.as_deref().unwrap_or("default"),
                                IndexRecordOption::WithFreqsAndPositions,
                            ),
                        };
                        opts = opts.set_indexing_options(
                            TextFieldIndexing::default()
                                .set_tokenizer(tokenizer)
                                .set_index_option(record),
                        );
                    }
                    if f.stored {
                        opts = opts.set_stored();
                    }
                    // The id is always a fast column: the total order breaks ties by it.
                    if f.fast || f.name == self.id_field {
                        opts = opts.set_fast("raw");
                    }
                    builder.add_text_field(&f.name, opts);
                }
                FieldType::Integer | FieldType::Float | FieldType::Boolean => {
                    let opts = numeric_options(f);
                    match f.field_type {
                        FieldType::Integer => builder.add_i64_field(&f.name, opts),
                        FieldType::Float => builder.add_f64_field(&f.name, opts),
                        _ => builder.add_bool_field(&f.name, opts),
                    };
                }
                FieldType::Date => {
                    let mut opts = DateOptions::default().set_precision(DateTimePrecision::Seconds);
                    if f.indexed {
                        opts = opts.set_indexed();
                    }
                    if f.stored {
                        opts = opts.set_stored();
                    }
                    if f.fast {
                        opts = opts.set_fast();
                    }
                    builder.add_date_field(&f.name, opts);
                }
            }
        }
        builder.build()
    }

    /// The tantivy fields searched when a query term names no field.
    pub fn default_search_fields(&self, schema: &Schema) -> Vec<Field> {
        self.default_fields
            .iter()
            .map(|name| {
                schema
                    .get_field(name)
                    .expect("validated: default fields exist")
            })
            .collect()
    }
}

fn numeric_options(f: &FieldConfig) -> NumericOptions {
    let mut opts = NumericOptions::default();
    if f.indexed {
        opts = opts.set_indexed();
    }
    if f.stored {
        opts = opts.set_stored();
    }
    if f.fast {
        opts = opts.set_fast();
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_is_valid_and_round_trips_through_toml() {
        let config = SchemaConfig::default();
        config.validate().unwrap();
        let text = toml::to_string(&config).unwrap();
        let again: SchemaConfig = toml::from_str(&text).unwrap();
        assert_eq!(again, config);
        let schema = config.build();
        assert!(schema.get_field("date").is_ok());
        assert_eq!(config.default_search_fields(&schema).len(), 2);
    }

    #[test]
    fn rejects_bad_schemas_with_reasons() {
        let parse = |s: &str| toml::from_str::<SchemaConfig>(s).unwrap().validate();
        let err = parse(
            r#"id_field = "id"
               default_fields = []
               [[field]]
               name = "id"
               type = "text""#,
        )
        .unwrap_err();
        assert!(matches!(err, SchemaError::BadIdField(_)), "{err}");
        let err = parse(
            r#"id_field = "id"
               default_fields = ["n"]
               [[field]]
               name = "id"
               type = "keyword"
               [[field]]
               name = "n"
               type = "integer""#,
        )
        .unwrap_err();
        assert!(matches!(err, SchemaError::BadDefaultField(_)), "{err}");
        let err = parse(
            r#"id_field = "id"
               default_fields = []
               [[field]]
               name = "id"
               type = "keyword"
               [[field]]
               name = "t"
               type = "text"
               tokenizer = "klingon""#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("klingon"), "{err}");
        let unknown_type = toml::from_str::<SchemaConfig>(
            r#"id_field = "id"
               default_fields = []
               [[field]]
               name = "id"
               type = "uuid""#,
        );
        assert!(unknown_type.is_err());
    }
}
