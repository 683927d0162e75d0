//! Parsers of command-line values every fanout binary shares, so that a flag means the same
//! thing on each: durations as humantime writes them, and counts that must be at least one.

use std::time::Duration;

/// Parses a duration as every fanout command does, with humantime: `250ms`, `2s`, `1m 30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 250ms or 2s: {e}"))
}

/// A duration of at least `min`.
pub fn duration_at_least(s: &str, min: Duration) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min {
        return Err(format!("{s:?} is under the minimum of {min:?}"));
    }
    Ok(d)
}

/// A count of at least one.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_counts_start_at_one() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("1s 500ms").unwrap(),
            Duration::from_millis(1_500)
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2").is_err(), "a unit is required");
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
    }
}
