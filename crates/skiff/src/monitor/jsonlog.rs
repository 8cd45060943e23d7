//! docker's json-file log driver format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`, strings
//! escaped as Go's encoder escapes them (`<`, `>`, `&` as `\u003c`..., invalid UTF-8 as
//! U+FFFD), so tools that read docker's logs read ours.

use std::fs::File;
use std::io::{self, Write};

/// Longest line kept whole; longer output is logged in pieces of this size (docker's 16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// Appends log entries for a container's streams.
pub struct JsonLog {
    file: File,
    /// Bytes of an unfinished line, per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    pub fn new(file: File) -> JsonLog {
        JsonLog {
            file,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Logs what `stream` (1 stdout, 2 stderr) wrote: each complete line is one entry.
    pub fn write(&mut self, stream: u8, data: &[u8]) -> io::Result<()> {
        let i = usize::from(stream == 2);
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[i]);
            line.extend_from_slice(&rest[..=pos]);
            self.entry(stream, &line)?;
            rest = &rest[pos + 1..];
        }
        self.partial[i].extend_from_slice(rest);
        while self.partial[i].len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial[i].drain(..MAX_LINE).collect();
            self.entry(stream, &piece)?;
        }
        Ok(())
    }

    /// Logs what is left of an unfinished line (at the end of the stream).
    pub fn flush(&mut self, stream: u8) -> io::Result<()> {
        let i = usize::from(stream == 2);
        if !self.partial[i].is_empty() {
            let line = std::mem::take(&mut self.partial[i]);
            self.entry(stream, &line)?;
        }
        Ok(())
    }

    fn entry(&mut self, stream: u8, line: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(line.len() + 80);
        out.extend_from_slice(b"{\"log\":");
        go_json_string(&mut out, line);
        out.extend_from_slice(if stream == 2 {
            b",\"stream\":\"stderr\",\"time\":\""
        } else {
            b",\"stream\":\"stdout\",\"time\":\""
        });
        out.extend_from_slice(crate::ops::container::store::now_rfc3339().as_bytes());
        out.extend_from_slice(b"\"}\n");
        self.file.write_all(&out)
    }
}

/// Appends `bytes` as a JSON string the way Go's `encoding/json` writes it.
pub fn go_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let v = c as u32;
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[((v >> shift) & 0xf) as usize]);
                    }
                }
                c if (c as u32) < 0x20 => {
                    let v = c as u32;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(v >> 4) as usize]);
                    out.push(HEX[(v & 0xf) as usize]);
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_go() {
        let mut out = Vec::new();
        go_json_string(&mut out, b"a<b>&\"\\\n\x01\xff");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\u{fffd}\""
        );
    }

    #[test]
    fn lines_split_and_partials_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut log = JsonLog::new(File::create(&path).unwrap());
        log.write(1, b"one\ntw").unwrap();
        log.write(1, b"o\nthree").unwrap();
        log.write(2, b"err\n").unwrap();
        log.flush(1).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let logs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<(&str, &str)> = logs
            .iter()
            .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("one\n", "stdout"),
                ("two\n", "stdout"),
                ("err\n", "stderr"),
                ("three", "stdout")
            ]
        );
    }
}
