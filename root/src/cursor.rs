//! The `search_after` cursor: a hit's place in the total order (its score and id), opaque to
//! clients. `v1.` then the score's bits and the id's bytes in hexadecimal, so it survives a
//! URL or JSON as it is, and a root of any version that knows `v1` reads it.

use fanout_proto::pb;

const PREFIX: &str = "v1.";

/// Longest cursor: the prefix, the score's 8 hex digits, and the longest id in hex.
const MAX_CURSOR_BYTES: usize = PREFIX.len() + 8 + 2 * fanout_proto::MAX_ID_BYTES;

/// The cursor of the hit with this score and id.
pub fn encode(score: f32, id: &str) -> String {
    use std::fmt::Write;
    let mut cursor = String::with_capacity(PREFIX.len() + 8 + 2 * id.len());
    cursor.push_str(PREFIX);
    // Writing to a String cannot fail.
    let _ = write!(cursor, "{:08x}", score.to_bits());
    for byte in id.bytes() {
        let _ = write!(cursor, "{byte:02x}");
    }
    cursor
}

/// The place a cursor names, or why it is not one this API gave.
pub fn decode(cursor: &str) -> Result<pb::SearchAfter, String> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(format!(
            "search_after is {} bytes; a cursor is at most {MAX_CURSOR_BYTES}",
            cursor.len()
        ));
    }
    let hex = cursor
        .strip_prefix(PREFIX)
        .ok_or("search_after is not a cursor from this API (pass the `next` of a response)")?;
    if hex.len() < 8 || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "search_after is not a cursor from this API (pass the `next` of a response)".into(),
        );
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex digits");
    let bits = u32::from_str_radix(&hex[..8], 16).expect("checked hex digits");
    let id: Vec<u8> = (8..hex.len()).step_by(2).map(byte).collect();
    let id = String::from_utf8(id).map_err(|_| "search_after names an id that is not UTF-8")?;
    Ok(pb::SearchAfter {
        score: f32::from_bits(bits),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_pins_its_format() {
        assert_eq!(encode(1.0, "ab"), "v1.3f8000006162");
        for (score, id) in [
            (1.0, "ab"),
            (0.0, ""),
            (12.345, "déjà vu/\u{1F600}"),
            (f32::MAX, "x"),
        ] {
            let back = decode(&encode(score, id)).unwrap();
            assert_eq!(
                (back.score.to_bits(), back.id.as_str()),
                (score.to_bits(), id)
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "",
            "v1.",
            "v1.3f80",
            "v2.3f8000006162",
            "v1.3f80000061x2",
            "v1.3f800000616",
            "v1.3f800000ff",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert!(decode(&format!("v1.{}", "0".repeat(5_000))).is_err());
        // The longest id an index takes still makes a cursor this API reads back.
        let longest = "x".repeat(fanout_proto::MAX_ID_BYTES);
        assert_eq!(decode(&encode(1.5, &longest)).unwrap().id, longest);
    }
}
