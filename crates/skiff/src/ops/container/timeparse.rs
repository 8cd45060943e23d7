//! Times and durations as docker's flags take them.

use super::store::parse_time;

/// Go's `time.ParseDuration` ("1h30m", "500ms", "2.5s"), in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    let v = total.round() as i64;
    Some(if neg { -v } else { v })
}

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
