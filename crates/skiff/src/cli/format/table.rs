//! docker's `--format` handling for list commands (`images`, `ps`, ...).
//!
//! * `""` or `table`: the command's default table;
//! * `table {{.A}}\t{{.B}}`: a table with those columns;
//! * `json`: one JSON object per row and line (`{{json .}}`);
//! * anything else: a template executed per row, each followed by `\n`.
//!
//! As in docker, a literal `\t` or `\n` (backslash, letter) in the format is
//! turned into a tab or newline, and spaces around a `table` template are
//! trimmed. Tables are laid out by [`tabwrite`] with docker's settings
//! (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`): each tab-terminated cell is
//! padded to the widest cell of its column plus 3, at least 10 columns wide;
//! the last cell of a line is not padded.

use serde_json::{Map, Value};
use unicode_width::UnicodeWidthStr;

use super::template::{Template, TemplateError};

/// A parsed `--format` value.
#[derive(Debug, Clone)]
pub enum Format {
    /// A table: `None` for the command's default columns.
    Table(Option<Template>),
    /// `json`: each row as a JSON object on its own line.
    Json,
    /// A custom template, executed once per row.
    Raw(Template),
}

/// docker's `Format.templateString`: drop a `table` prefix, trim spaces and
/// expand the `\t` and `\n` escapes.
fn template_string(format: &str) -> String {
    let body = format.strip_prefix("table").unwrap_or(format);
    body.trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n")
}

impl Format {
    /// Parses a `--format` flag value (`""` means the default table).
    pub fn parse(format: &str) -> Result<Format, TemplateError> {
        match format {
            "" | "table" => Ok(Format::Table(None)),
            "json" => Ok(Format::Json),
            f if f.starts_with("table") => {
                Ok(Format::Table(Some(Template::parse(&template_string(f))?)))
            }
            f => Ok(Format::Raw(Template::parse(&template_string(f))?)),
        }
    }

    /// Whether this is a table format (a header row is printed).
    pub fn is_table(&self) -> bool {
        matches!(self, Format::Table(_))
    }
}

/// Returns `row` with its top-level keys sorted, as docker's list rows are
/// marshalled (so `--format json` and `{{json .}}` match docker's key order).
fn sorted(row: &Value) -> Value {
    match row {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), m[k.as_str()].clone()))
                    .collect::<Map<_, _>>(),
            )
        }
        other => other.clone(),
    }
}

/// Renders `rows` as docker prints a list command's output.
///
/// `default_table` is the command's default table template (with or without
/// the `table ` prefix, e.g. `"table {{.Repository}}\t{{.Tag}}"`), used for
/// `Format::Table(None)`. `headers` maps field names to column titles
/// (`{"Repository": "REPOSITORY", "ID": "IMAGE ID", ...}`); the table's
/// template is executed over it, with `json`, `split`, `join`, `title`,
/// `lower`, `upper` and `truncate` returning their argument unchanged, to
/// produce the header line. A field missing from `headers` shows as
/// `<no value>`, as in docker. The output ends with a newline after each row
/// (just the header line when there are no rows).
pub fn render(
    format: &Format,
    default_table: &str,
    headers: &Value,
    rows: &[Value],
) -> Result<String, TemplateError> {
    render_typed(format, default_table, headers, rows, None)
}

/// [`render`] for rows that stand for docker's formatter context `context` (e.g.
/// `*formatter.imageContext`): a field the rows do not have fails as in docker (`can't
/// evaluate field X in type *formatter.imageContext`) and a row printed as JSON is
/// HTML-escaped, as docker marshals it.
pub fn render_typed(
    format: &Format,
    default_table: &str,
    headers: &Value,
    rows: &[Value],
    context: Option<&str>,
) -> Result<String, TemplateError> {
    let rows: Vec<Value> = rows.iter().map(sorted).collect();
    let typed = |t: &Template| match context {
        Some(c) => t.clone().typed(c, &[]),
        None => t.clone(),
    };
    match format {
        Format::Json => Ok(rows
            .iter()
            .map(|r| match context {
                Some(_) => super::gojson::json_html_escaped(Some(r)) + "\n",
                None => super::gojson::json(Some(r)) + "\n",
            })
            .collect()),
        Format::Raw(t) => {
            let t = typed(t);
            rows.iter().map(|r| Ok(t.execute(r)? + "\n")).collect()
        }
        Format::Table(t) => {
            let t = match t {
                Some(t) => typed(t),
                None => typed(&Template::parse(&template_string(default_table))?),
            };
            let t = &t;
            let mut buf = t.execute_header(headers);
            buf.push('\n');
            for r in &rows {
                buf.push_str(&t.execute(r)?);
                buf.push('\n');
            }
            Ok(tabwrite(&buf, 10, 3))
        }
    }
}

/// One cell: its text and display width.
struct Cell {
    text: String,
    width: usize,
}

/// Go's `text/tabwriter` (elastic tabstops) with padchar `' '`, no flags, as
/// docker's fork configures it; widths are display widths, like docker's
/// `go-runewidth`.
struct TabWriter {
    minwidth: usize,
    padding: usize,
    lines: Vec<Vec<Cell>>,
    cell: String,
    widths: Vec<usize>,
    out: String,
}

impl TabWriter {
    fn terminate_cell(&mut self) -> usize {
        let text = std::mem::take(&mut self.cell);
        let width = UnicodeWidthStr::width(text.as_str());
        let line = self.lines.last_mut();
        match line {
            Some(line) => {
                line.push(Cell { text, width });
                line.len()
            }
            None => {
                self.lines.push(vec![Cell { text, width }]);
                1
            }
        }
    }

    fn flush(&mut self) {
        self.format(0, self.lines.len());
        self.lines = vec![Vec::new()];
        self.widths.clear();
    }

    /// Lays out lines `line0..line1`; `self.widths` holds the widths of the
    /// columns to the left of the one being formatted.
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A cell exists in this column: lay out the block of lines that
            // all have one, after printing the lines before it.
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].width + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, c) in self.lines[i].iter().enumerate() {
                self.out.push_str(&c.text);
                if let Some(w) = self.widths.get(j) {
                    self.out
                        .extend(std::iter::repeat_n(' ', w.saturating_sub(c.width)));
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

/// Aligns tab-separated text like Go's
/// `tabwriter.NewWriter(out, minwidth, 1, padding, ' ', 0)` then `Flush`.
pub fn tabwrite(input: &str, minwidth: usize, padding: usize) -> String {
    let mut tw = TabWriter {
        minwidth,
        padding,
        lines: vec![Vec::new()],
        cell: String::new(),
        widths: Vec::new(),
        out: String::new(),
    };
    for ch in input.chars() {
        match ch {
            '\t' | '\u{b}' | '\n' | '\u{c}' => {
                let ncells = tw.terminate_cell();
                if ch == '\n' || ch == '\u{c}' {
                    tw.lines.push(Vec::new());
                    // A line with a single cell cannot affect the alignment
                    // of the following lines: flush (Go does the same).
                    if ch == '\u{c}' || ncells == 1 {
                        tw.flush();
                    }
                }
            }
            c => tw.cell.push(c),
        }
    }
    if !tw.cell.is_empty() {
        tw.terminate_cell();
    }
    tw.flush();
    tw.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IMAGES_TABLE: &str =
        "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\\t{{.Size}}";
    const PS_TABLE: &str =
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}";

    fn image_headers() -> Value {
        json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
               "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"})
    }

    fn image(repo: &str, tag: &str, id: &str, created: &str, size: &str) -> Value {
        json!({"Repository": repo, "Tag": tag, "ID": id, "CreatedSince": created, "Size": size, "Digest": "<none>"})
    }

    fn ps_headers() -> Value {
        json!({"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
               "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
               "Labels": "LABELS"})
    }

    fn containers() -> Vec<Value> {
        ["containerID1 foobar_baz", "containerID2 foobar_bar"]
            .iter()
            .filter_map(|s| s.split_once(' '))
            .map(|(id, name)| {
                json!({"ID": id, "Image": "ubuntu", "Command": "\"\"", "RunningFor": "24 hours ago", "Status": "",
                       "Ports": "", "Names": name, "Size": "0B", "State": "running"})
            })
            .collect()
    }

    fn run(format: &str, default: &str, headers: &Value, rows: &[Value]) -> String {
        let f = Format::parse(format).expect("format");
        render(&f, default, headers, rows).expect("render")
    }

    #[test]
    fn docker_images_listing() {
        let rows = [
            image("busybox", "latest", "beae173ccac6", "2 weeks ago", "1.24MB"),
            image("alpine", "3.19", "05455a08881e", "3 months ago", "7.38MB"),
        ];
        let want = "\
REPOSITORY   TAG       IMAGE ID       CREATED        SIZE
busybox      latest    beae173ccac6   2 weeks ago    1.24MB
alpine       3.19      05455a08881e   3 months ago   7.38MB
";
        assert_eq!(run("", IMAGES_TABLE, &image_headers(), &rows), want);
        assert_eq!(run("table", IMAGES_TABLE, &image_headers(), &rows), want);
        let one = "\
REPOSITORY   TAG       IMAGE ID       CREATED       SIZE
busybox      latest    beae173ccac6   2 weeks ago   1.24MB
";
        assert_eq!(run("", IMAGES_TABLE, &image_headers(), &rows[..1]), one);
    }

    #[test]
    fn docker_ps_table_fixture() {
        // docker/cli formatter/container_test.go, "table" with size.
        let want = "\
CONTAINER ID   IMAGE     COMMAND   CREATED        STATUS    PORTS     NAMES        SIZE
containerID1   ubuntu    \"\"        24 hours ago                       foobar_baz   0B
containerID2   ubuntu    \"\"        24 hours ago                       foobar_bar   0B
";
        assert_eq!(run("table", PS_TABLE, &ps_headers(), &containers()), want);
    }

    #[test]
    fn header_functions_fixture() {
        // docker/cli testdata/container-context-write-special-headers.golden
        let format = "table {{truncate .ID 5}}\\t{{json .Image}} {{.RunningFor}}/{{title .Status}}/{{pad .Ports 2 2}}.{{upper .Names}} {{lower .Status}}";
        let want = "\
CONTAINER ID   IMAGE CREATED/STATUS/  PORTS  .NAMES STATUS
conta          \"ubuntu\" 24 hours ago//.FOOBAR_BAZ 
conta          \"ubuntu\" 24 hours ago//.FOOBAR_BAR 
";
        assert_eq!(run(format, PS_TABLE, &ps_headers(), &containers()), want);
        let split = run(
            "table {{split .Image \":\"}}",
            PS_TABLE,
            &ps_headers(),
            &containers(),
        );
        assert_eq!(split, "IMAGE\n[ubuntu]\n[ubuntu]\n");
    }

    #[test]
    fn custom_tables_and_empty_lists() {
        assert_eq!(
            run("table {{.Image}}\t{{.Size}}", PS_TABLE, &ps_headers(), &[]),
            "IMAGE     SIZE\n"
        );
        assert_eq!(
            run("table {{.Image}}", PS_TABLE, &ps_headers(), &containers()),
            "IMAGE\nubuntu\nubuntu\n"
        );
        assert_eq!(
            run("table {{.State}}", PS_TABLE, &ps_headers(), &containers()),
            "STATE\nrunning\nrunning\n"
        );
        // A field without a header prints docker's "<no value>".
        assert_eq!(
            run("table {{.Foo}}", PS_TABLE, &ps_headers(), &[]),
            "<no value>\n"
        );
    }

    #[test]
    fn raw_and_json_formats() {
        let rows = containers();
        assert_eq!(
            run("{{.Image}}", PS_TABLE, &ps_headers(), &rows),
            "ubuntu\nubuntu\n"
        );
        assert_eq!(
            run("{{.ID}}\\t{{.Names}}", PS_TABLE, &ps_headers(), &rows[..1]),
            "containerID1\tfoobar_baz\n"
        );
        let json_out = run("json", PS_TABLE, &ps_headers(), &rows[..1]);
        assert_eq!(
            json_out,
            "{\"Command\":\"\\\"\\\"\",\"ID\":\"containerID1\",\"Image\":\"ubuntu\",\"Names\":\"foobar_baz\",\"Ports\":\"\",\
             \"RunningFor\":\"24 hours ago\",\"Size\":\"0B\",\"State\":\"running\",\"Status\":\"\"}\n"
        );
        assert_eq!(
            run("{{json .}}", PS_TABLE, &ps_headers(), &rows[..1]),
            json_out
        );
        assert_eq!(run("json", PS_TABLE, &ps_headers(), &[]), "");
    }

    #[test]
    fn format_errors_like_docker() {
        let err = Format::parse("{{InvalidFunction}}")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "template parsing error: template: :1: function \"InvalidFunction\" not defined"
                    .to_owned()
            )
        );
        let f = Format::parse("{{nil}}").expect("parse");
        let err = render(&f, "", &json!({}), &containers()).map_err(|e| e.to_string());
        assert_eq!(err, Err("template parsing error: template: :1:2: executing \"\" at <nil>: nil is not a command".to_owned()));
        assert!(Format::parse("table {{.A").is_err());
        assert!(matches!(Format::parse(""), Ok(Format::Table(None))));
        assert!(Format::parse("table {{.A}}").is_ok_and(|f| f.is_table()));
    }

    #[test]
    fn tabwriter_semantics() {
        // Columns are blocks of consecutive lines that have the cell.
        assert_eq!(
            tabwrite("a\tb\tc\naaaa\tbbbbbbbbbbb\tc\n", 10, 3),
            "a         b             c\naaaa      bbbbbbbbbbb   c\n"
        );
        // A line without tabs ends the block; later lines align separately.
        assert_eq!(
            tabwrite("a\tb\nxyz\nlong-cell-text\tb\n", 10, 3),
            "a         b\nxyz\nlong-cell-text   b\n"
        );
        // Empty cells are padded; text without a trailing newline is kept.
        assert_eq!(tabwrite("\tx\ny\tz", 2, 1), "  x\ny z");
        // Display width: wide characters count twice.
        assert_eq!(tabwrite("日本\tx\nab\tx\n", 1, 1), "日本 x\nab   x\n");
        assert_eq!(tabwrite("", 10, 3), "");
    }
}
