//! docker's tables: cells, Go tabwriter layout (minwidth 10, padding 3), human sizes.

use crate::harness::Out;

/// Split a table line into cells at runs of two or more spaces.
pub fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut spaces = 0;
    for c in line.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        if spaces >= 2 && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        } else {
            for _ in 0..spaces {
                cur.push(' ');
            }
        }
        spaces = 0;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Lay rows out as docker's CLI does: Go's tabwriter with minwidth 10, padding 3, spaces,
/// every cell but a line's last one padded to its column's width.
pub fn docker_table(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count() + 3);
            }
        }
    }
    for w in &mut widths {
        *w = (*w).max(10);
    }
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            s.push_str(c);
            if i + 1 < r.len() {
                for _ in c.chars().count()..widths[i] {
                    s.push(' ');
                }
            }
        }
        s.push('\n');
    }
    s
}

/// Parse a docker table: check the header, check the layout is docker's to the byte, and
/// return the data rows as cells.
#[track_caller]
pub fn parse_docker_table(out: &Out, header: &[&str]) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = out.stdout.lines().map(cells).collect();
    assert!(!rows.is_empty(), "expected a table with a header:\n{out}");
    assert_eq!(
        rows[0], header,
        "table header differs from docker's:\n{out}"
    );
    for r in &rows[1..] {
        assert_eq!(
            r.len(),
            header.len(),
            "row does not have {} cells:\n{out}",
            header.len()
        );
    }
    assert_eq!(
        out.stdout,
        docker_table(&rows),
        "table layout differs from docker's (tabwriter: minwidth 10, padding 3):\n{out}"
    );
    rows[1..].to_vec()
}

/// Parse a docker human size ("2.13MB", "512B", "1.5kB") into bytes (decimal units).
pub fn parse_human_size(s: &str) -> Option<f64> {
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some(n * mult)
}
