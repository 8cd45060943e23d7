//! Human-readable sizes and durations, as docker/go-units prints them.
//!
//! * [`human_size`] is go-units `HumanSize` (decimal, `"%.4g"`: `4.261MB`);
//!   docker's `images`/`ps`/`history` SIZE columns use
//!   `HumanSizeWithPrecision(size, 3)`, i.e. [`human_size_with_precision`]
//!   with `3` (`4.26MB`).
//! * [`bytes_size`] is `BytesSize` (binary, `"%.4g"`: `1.5KiB`), used by
//!   `docker stats` for memory.
//! * [`human_duration`] is `HumanDuration`; [`time_ago`] adds `" ago"` as the
//!   CREATED column of `docker images` / `docker ps` does.

use std::time::Duration;

use super::gofmt::format_g;

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// go-units `getSizeAndUnit`: divide by `base` while it is at least `base`.
fn size_and_unit(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units `HumanSize`: decimal units, 4 significant digits
/// (`0B`, `1kB`, `4.261MB`, `1.235GB`).
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 4)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant
/// digits (`"%.*g%s"`). docker's image and container SIZE columns use 3.
pub fn human_size_with_precision(bytes: u64, precision: usize) -> String {
    let (size, unit) = size_and_unit(bytes as f64, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", format_g(size, Some(precision)))
}

/// go-units `BytesSize`: binary units, 4 significant digits (`1.5KiB`).
pub fn bytes_size(bytes: u64) -> String {
    let (size, unit) = size_and_unit(bytes as f64, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", format_g(size, Some(4)))
}

const NANOS_PER_SEC: i64 = 1_000_000_000;
const NANOS_PER_MIN: i64 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MIN;

/// Go's `Duration.Seconds()`/`Minutes()`/`Hours()`: whole units plus the
/// fractional remainder, computed in floating point the way Go does.
fn go_units(nanos: i64, unit: i64) -> f64 {
    (nanos / unit) as f64 + (nanos % unit) as f64 / unit as f64
}

/// go-units `HumanDuration` ("Less than a second", "1 second", "About a
/// minute", "3 hours", "2 weeks", "3 months", "2 years", ...).
///
/// Durations beyond Go's maximum (about 292 years) are clamped to it.
pub fn human_duration(d: Duration) -> String {
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let seconds = go_units(nanos, NANOS_PER_SEC) as i64;
    if seconds < 1 {
        return "Less than a second".to_owned();
    }
    if seconds == 1 {
        return "1 second".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = go_units(nanos, NANOS_PER_MIN) as i64;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (go_units(nanos, NANOS_PER_HOUR) + 0.5) as i64;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!(
        "{} years",
        go_units(nanos, NANOS_PER_HOUR) as i64 / 24 / 365
    )
}

/// `HumanDuration(now - then) + " ago"`, as docker's CREATED columns print
/// ("2 weeks ago"). A `then` in the future (clock skew) gives
/// "Less than a second ago", as in docker.
pub fn time_ago(then_unix_secs: i64, now_unix_secs: i64) -> String {
    let secs = now_unix_secs.saturating_sub(then_unix_secs).max(0);
    let d = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    format!("{} ago", human_duration(d))
}

/// Go's `time.Unix(secs, 0).UTC().String()`: `2006-01-02 15:04:05 +0000 UTC`,
/// the form of docker's `CreatedAt` fields (docker uses the local zone; this
/// always renders UTC). Out-of-range timestamps render as the Unix epoch.
pub fn unix_time_utc(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_size_matches_go_units() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (1024, "1.024kB"),
            (1_000_000, "1MB"),
            (1_048_576, "1.049MB"),
            (4_261_000, "4.261MB"),
            (1_234_567_890, "1.235GB"),
            (999_950, "1000kB"),
            (1_062_500, "1.062MB"),
            (3_700_000_000_000, "3.7TB"),
            (u64::MAX, "18.45EB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(*n), *want, "human_size({n})");
        }
    }

    #[test]
    fn human_size_precision_3_as_docker_images() {
        assert_eq!(human_size_with_precision(4_261_000, 3), "4.26MB");
        assert_eq!(human_size_with_precision(1_234_567_890, 3), "1.23GB");
        assert_eq!(human_size_with_precision(1_240_000, 3), "1.24MB");
        assert_eq!(human_size_with_precision(0, 3), "0B");
        assert_eq!(human_size_with_precision(12_345, 3), "12.3kB");
        assert_eq!(human_size_with_precision(999_999, 3), "1e+03kB");
        assert_eq!(human_size_with_precision(77_800_000, 3), "77.8MB");
    }

    #[test]
    fn bytes_size_matches_go_units() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1023), "1023B");
        assert_eq!(bytes_size(1024), "1KiB");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(1024 * 1024), "1MiB");
        assert_eq!(bytes_size(1_073_741_824 * 3 / 2), "1.5GiB");
        assert_eq!(bytes_size(1_048_575), "1024KiB");
    }

    #[test]
    fn human_duration_matches_go_units() {
        let s = Duration::from_secs;
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "Less than a second"),
            (Duration::from_millis(999), "Less than a second"),
            (s(1), "1 second"),
            (s(2), "2 seconds"),
            (s(59), "59 seconds"),
            (s(60), "About a minute"),
            (s(119), "About a minute"),
            (s(120), "2 minutes"),
            (s(59 * 60 + 59), "59 minutes"),
            (s(3600), "About an hour"),
            (s(3600 + 29 * 60), "About an hour"),
            (s(3600 + 30 * 60), "2 hours"),
            (s(47 * 3600), "47 hours"),
            (s(48 * 3600), "2 days"),
            (s(13 * 86400), "13 days"),
            (s(14 * 86400), "2 weeks"),
            (s(59 * 86400), "8 weeks"),
            (s(60 * 86400), "2 months"),
            (s(729 * 86400), "24 months"),
            (s(730 * 86400), "2 years"),
            (s(3 * 365 * 86400), "3 years"),
            (Duration::MAX, "292 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "human_duration({d:?})");
        }
    }

    #[test]
    fn time_ago_like_docker_created_column() {
        let now = 1_700_000_000;
        assert_eq!(time_ago(now - 14 * 86400, now), "2 weeks ago");
        assert_eq!(time_ago(now - 86400, now), "24 hours ago");
        assert_eq!(time_ago(now - 65, now), "About a minute ago");
        assert_eq!(time_ago(now + 100, now), "Less than a second ago");
        assert_eq!(time_ago(i64::MIN, i64::MAX), "292 years ago");
    }

    #[test]
    fn unix_time_utc_like_go_time_string() {
        assert_eq!(unix_time_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            unix_time_utc(1_700_000_000),
            "2023-11-14 22:13:20 +0000 UTC"
        );
    }
}
