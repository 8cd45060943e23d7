//! Small output helpers shared by commands: JSON as docker indents it, timestamps as docker
//! prints them, and the y/N confirmation prompt.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::Result;
use serde::Serialize;

use super::format::{self, Format};

/// JSON indented with four spaces, as `docker inspect` prints it.
pub fn to_docker_json<T: Serialize>(value: &T) -> Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// Go's `time.Time.String()` for a UTC Unix time: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// RFC 3339 in UTC without fractions, as `history --human=false` prints it.
pub fn rfc3339_secs(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Asks `question [y/N]` on the terminal; false unless the answer is y or yes.
pub fn confirm(question: &str) -> Result<bool> {
    print!("{question} [y/N] ");
    io::stdout().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Renders rows with a `--format` value (or the default table) and prints them. `context`
/// is the Go type docker's formatter gives a row (`*formatter.imageContext`), named in the
/// error for a field that does not exist.
pub fn print_rows(
    format_flag: Option<&str>,
    default_table: &str,
    headers: &serde_json::Value,
    rows: &[serde_json::Value],
    context: &str,
) -> Result<()> {
    let format = Format::parse(format_flag.unwrap_or(""))?;
    let text = format::render_typed(&format, default_table, headers, rows, Some(context))?;
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// True when stderr is a terminal, i.e. progress bars are wanted.
pub fn interactive() -> bool {
    io::stderr().is_terminal()
}
