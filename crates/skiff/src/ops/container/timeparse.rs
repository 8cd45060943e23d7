//! Times and durations as docker's flags take them.

use super::store::parse_time;

/// Go's `time.ParseDuration` ("1h30m", "500ms", "2.5s"), in nanoseconds: the same parser
/// HEALTHCHECK's flags use in builds.
pub use skiff_build::duration::parse_go_duration;

/// docker's `--since`/`--until` values: RFC 3339 (with or without zone), a Unix time
/// (`1700000000` or `1700000000.5`), or a duration back from now (`10m`).
pub fn parse_time_or_duration(s: &str, now: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
    if let Some(nanos) = parse_go_duration(s) {
        return Some(now - time::Duration::nanoseconds(nanos));
    }
    if let Some(t) = parse_time(s) {
        return Some(t);
    }
    if let Ok(f) = s.parse::<f64>() {
        return time::OffsetDateTime::from_unix_timestamp_nanos((f * 1e9) as i128).ok();
    }
    let datetime =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(t) = time::PrimitiveDateTime::parse(s, &datetime) {
        return Some(t.assume_utc());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date) {
        return Some(d.midnight().assume_utc());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("1s"), Some(1_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("10"), None);
    }
}
