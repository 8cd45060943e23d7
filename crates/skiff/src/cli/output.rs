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

/// What every `inspect` command prints, as docker's CLI does: the documents found as one
/// JSON array (or one template result per document, and an empty line when none produced
/// anything), then each failure on its own line, and exit status 1 if there was any.
pub struct InspectOutput<'t> {
    template: Option<&'t format::Template>,
    documents: Vec<serde_json::Value>,
    text: String,
    errors: Vec<String>,
}

impl<'t> InspectOutput<'t> {
    pub fn new(template: Option<&'t format::Template>) -> Self {
        InspectOutput {
            template,
            documents: Vec::new(),
            text: String::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a document; `render` runs the template on it (callers differ in how docker
    /// types the object for the template).
    pub fn add(
        &mut self,
        doc: serde_json::Value,
        render: impl FnOnce(
            &format::Template,
            &serde_json::Value,
        ) -> Result<String, format::TemplateError>,
    ) {
        match self.template {
            Some(t) => match render(t, &doc) {
                Ok(text) => {
                    self.text.push_str(&text);
                    self.text.push('\n');
                }
                Err(e) => self.errors.push(e.to_string()),
            },
            None => self.documents.push(doc),
        }
    }

    /// Records a failure, reported after the output.
    pub fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Prints everything and fails if any name failed.
    pub fn finish(self) -> Result<()> {
        let mut stdout = io::stdout().lock();
        match self.template {
            Some(_) if self.text.is_empty() => writeln!(stdout)?,
            Some(_) => stdout.write_all(self.text.as_bytes())?,
            None => writeln!(stdout, "{}", to_docker_json(&self.documents)?)?,
        }
        stdout.flush()?;
        report_errors(self.errors)
    }
}

/// Prints each error on its own line and exits 1 if there was any (docker's CLI does this
/// for commands that take several objects).
pub fn report_errors(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Err(crate::ops::error::Reported(anyhow::anyhow!(errors.join("\n"))).into())
}

/// The user-facing text of an error: the outermost message with its causes, joined as Go
/// wraps errors ("context: cause"), each cause once.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
