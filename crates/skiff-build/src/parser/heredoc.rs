//! Heredocs: `RUN <<EOF`, `COPY <<-"EOF" /dst`, `RUN 3<<EOF`; the body follows the instruction
//! up to a line that is exactly the delimiter (after leading tabs with `<<-`).

use super::Heredoc;
use crate::shell::{Lexer, NoEnv, ShellError};

/// The heredocs a logical line opens, in order, with empty contents.
pub(super) fn heredocs_in_line(line: &str) -> Result<Vec<Heredoc>, ShellError> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    // A line that does not lex has no heredocs, as in BuildKit.
    let words = lexer.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Parses one word of the form `[fd]<<[-][blanks]delimiter` (BuildKit's
/// `^(\d*)<<(-?)\s*([^<]*)$`). A quoted delimiter, even partly, turns expansion of the body off.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ShellError> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches([' ', '\t', '\n', '\r', '\u{c}']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let file_descriptor = word[..digits].parse().unwrap_or(0);
    let mut lexer = Lexer {
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    let words = lexer.process_words(rest, &NoEnv)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    lexer.raw_quotes = true;
    let raw = lexer.process_words(rest, &NoEnv)?;
    let [raw_name] = raw.as_slice() else {
        return Ok(None);
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: name.clone(),
        file_descriptor,
        expand: quotes(name) == quotes(raw_name),
        chomp,
        content: String::new(),
    }))
}

/// Removes the leading tabs of every line, for `<<-` heredocs.
pub fn chomp_heredoc_content(src: &str) -> String {
    src.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc("<<EOF").unwrap().unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.file_descriptor),
            ("EOF", true, false, 0)
        );
        let h = parse_heredoc("3<<-'EOF'").unwrap().unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.file_descriptor),
            ("EOF", false, true, 3)
        );
        let h = parse_heredoc("<<E\"O\"F").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand), ("EOF", false));
        assert_eq!(parse_heredoc("<<").unwrap(), None);
        assert_eq!(parse_heredoc("a<<EOF").unwrap(), None);
        assert_eq!(parse_heredoc("<<EOF<").unwrap(), None);
    }

    #[test]
    fn chomps_leading_tabs() {
        assert_eq!(chomp_heredoc_content("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
