//! Documents in and out: a JSON line as a tantivy document with its id, the shard check on
//! that id, and a stored document back as the JSON object the API returns.

use fanout_proto::{shard_for_id, ShardId, MAX_ID_BYTES};
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use tantivy::schema::{OwnedValue, Schema};
use tantivy::TantivyDocument;

use crate::error::LeafError;
use crate::schema::SchemaConfig;

/// A JSON document as a tantivy document, and its id (a number id is kept as a string).
pub fn parse_document(
    schema: &Schema,
    config: &SchemaConfig,
    json: &str,
) -> Result<(String, TantivyDocument), String> {
    let mut object: Map<String, Value> = match serde_json::from_str(json) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON: {e}")),
    };
    let id_name = &config.id_field;
    let id = match object.get(id_name) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(_) => return Err(format!("field {id_name:?} must be a non-empty string")),
        None => return Err(format!("missing id field {id_name:?}")),
    };
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "id is {} bytes; the most is {MAX_ID_BYTES}",
            id.len()
        ));
    }
    object.insert(id_name.clone(), Value::String(id.clone()));
    let doc = TantivyDocument::from_json_object(schema, object).map_err(|e| e.to_string())?;
    Ok((id, doc))
}

/// Whether `id` belongs to `shard` of `num_shards` (always, when `num_shards` is 0).
pub fn check_owner(shard: ShardId, id: &str, num_shards: u32) -> Result<(), String> {
    if num_shards == 0 {
        return Ok(());
    }
    let owner = shard_for_id(id, num_shards);
    if owner != shard {
        return Err(format!(
            "id {id:?} belongs to shard {owner} of {num_shards}, not to shard {shard}"
        ));
    }
    Ok(())
}

/// A stored document as a JSON object, written directly from the stored values: one value
/// per field, or an array when it has several.
pub fn stored_fields_json(schema: &Schema, doc: &TantivyDocument) -> Result<String, LeafError> {
    let mut out = Vec::with_capacity(512);
    let mut serializer = serde_json::Serializer::new(&mut out);
    let written: Result<(), serde_json::Error> = (|| {
        let mut map = serializer.serialize_map(None)?;
        for (field, entry) in schema.fields() {
            if !entry.is_stored() {
                continue;
            }
            let mut values = doc.get_all(field).map(OwnedValue::from);
            let Some(first) = values.next() else { continue };
            match values.next() {
                None => map.serialize_entry(entry.name(), &first)?,
                Some(second) => {
                    let all: Vec<OwnedValue> = [first, second].into_iter().chain(values).collect();
                    map.serialize_entry(entry.name(), &all)?
                }
            }
        }
        map.end()
    })();
    written.map_err(|e| LeafError::Internal(format!("cannot encode stored fields: {e}")))?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_non_empty_strings_or_integers_of_bounded_length() {
        let config = SchemaConfig::default();
        let schema = config.build();
        let parse = |json: &str| parse_document(&schema, &config, json).map(|(id, _)| id);
        assert_eq!(parse(r#"{"id": "a", "title": "x"}"#).unwrap(), "a");
        assert_eq!(parse(r#"{"id": 42}"#).unwrap(), "42");
        assert!(parse(r#"{"id": ""}"#).is_err());
        assert!(parse(r#"{"title": "x"}"#).is_err());
        let longest = "x".repeat(MAX_ID_BYTES);
        assert!(parse(&format!(r#"{{"id": "{longest}"}}"#)).is_ok());
        let err = parse(&format!(r#"{{"id": "{longest}y"}}"#)).unwrap_err();
        assert!(err.contains("the most is 512"), "{err}");
    }
}
