//! Our own parser cases: errors, directives, heredocs, line spans.

use skiff_build::parser::{parse, Keyword, ParseErrorKind};

#[test]
fn unknown_instruction_is_reported_with_docker_wording_and_line() {
    let err = parse(b"FROM busybox\nRUNCMD echo hi\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 2: unknown instruction: RUNCMD"
    );
    let err = parse(b"FROM busybox\nONBUILD FOO x\n").unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::UnknownInstruction("FOO".into()));
}

#[test]
fn error_names_first_line_of_a_continued_instruction() {
    let err = parse(b"FROM a\nENV \\\n  X\n").unwrap_err();
    assert_eq!((err.start_line, err.end_line), (2, 3));
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 2: ENV must have two arguments"
    );
}

#[test]
fn empty_and_comment_only_files_have_no_instructions() {
    for src in [&b""[..], b"\n\n", b"# syntax=x\n# hi\n"] {
        assert_eq!(parse(src).unwrap_err().kind, ParseErrorKind::Empty);
    }
}

#[test]
fn directives_are_read_only_at_the_top() {
    let df = parse(
        b"# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM a\nRUN x `\n  y\n",
    )
    .unwrap();
    assert_eq!(df.directive("syntax"), Some("docker/dockerfile:1"));
    assert_eq!(df.directive("check"), Some("skip=all"));
    assert_eq!(df.escape, '`');
    assert_eq!(df.dump(), "(from \"a\")\n(run \"x   y\")");

    let df = parse(b"FROM a\n# escape=`\nRUN x `\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert!(df.directives.is_empty());

    let err = parse(b"# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"
    );
    let err = parse(b"# syntax=a\n# SYNTAX=b\nFROM a\n").unwrap_err();
    assert_eq!(
        err.kind,
        ParseErrorKind::DuplicateDirective("syntax".into())
    );
}

#[test]
fn comments_and_blank_lines_inside_continuations_are_skipped() {
    let df = parse(b"RUN a \\\n# comment\n\n  b\nCMD c\n").unwrap();
    assert_eq!(df.instructions[0].args, ["a   b"]);
    assert_eq!(
        (df.instructions[0].start_line, df.instructions[0].end_line),
        (1, 4)
    );
    assert_eq!(df.instructions[1].start_line, 5);
    assert_eq!(df.warnings.len(), 1);
}

#[test]
fn comments_above_an_instruction_are_kept() {
    let df = parse(b"# syntax=x\n# about from\nFROM a\n").unwrap();
    assert_eq!(df.instructions[0].comments, ["about from"]);
}

#[test]
fn exec_form_and_fallback_to_shell_form() {
    let df =
        parse(b"CMD [\"a\", \"b\"]\nCMD [\"a\", 'b']\nCOPY [\"a b\", \"c\"]\nCOPY a b\n").unwrap();
    let i = &df.instructions;
    assert!(i[0].json && i[0].args == ["a", "b"]);
    assert!(!i[1].json && i[1].args == ["[\"a\", 'b']"]);
    assert!(i[2].json && i[2].args == ["a b", "c"]);
    assert!(!i[3].json && i[3].args == ["a", "b"]);
    let err = parse(b"CMD [\"a\", 1]\n").unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::NotStringArray);
}

#[test]
fn flags_are_split_off() {
    let df = parse(b"COPY --from=build --chown=1:1 a /b\nRUN --mount=type=cache,target=/c make\n")
        .unwrap();
    assert_eq!(df.instructions[0].flags, ["--from=build", "--chown=1:1"]);
    assert_eq!(df.instructions[0].keyword, Keyword::Copy);
    assert_eq!(df.instructions[1].flags, ["--mount=type=cache,target=/c"]);
    assert_eq!(df.instructions[1].args, ["make"]);
}

#[test]
fn heredocs_collect_their_bodies() {
    let src =
        b"FROM a\nRUN <<EOF\necho $HOME\nEOF\nCOPY <<-'A' <<B /dst/\n\tone\n\tA\ntwo\nB\nCMD x\n";
    let df = parse(src).unwrap();
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].content, "echo $HOME\n");
    assert!(run.heredocs[0].expand);
    assert_eq!((run.start_line, run.end_line), (2, 4));
    let copy = &df.instructions[2];
    assert_eq!(copy.heredocs.len(), 2);
    assert_eq!(
        (
            copy.heredocs[0].name.as_str(),
            copy.heredocs[0].chomp,
            copy.heredocs[0].expand
        ),
        ("A", true, false)
    );
    assert_eq!(copy.heredocs[0].content, "\tone\n");
    assert_eq!(copy.heredocs[1].content, "two\n");
    assert_eq!(df.instructions[3].start_line, 10);
    assert_eq!(
        df.dump(),
        "(from \"a\")\n(run \"<<EOF\")\n(copy \"<<-'A'\" \"<<B\" \"/dst/\")\n(cmd \"x\")"
    );
}

#[test]
fn heredocs_only_in_shell_form_run_copy_add() {
    let df = parse(b"RUN [\"<<EOF\"]\nCMD <<EOF\nONBUILD RUN <<X\nbody\nX\n").unwrap();
    assert!(df.instructions[0].heredocs.is_empty());
    assert!(df.instructions[1].heredocs.is_empty());
    assert_eq!(df.instructions[2].heredocs[0].content, "body\n");
    assert_eq!(df.instructions.len(), 3);
}

#[test]
fn unterminated_heredoc_fails() {
    let err = parse(b"RUN <<EOF\necho\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 1: unterminated heredoc"
    );
}

#[test]
fn crlf_and_bom_are_accepted() {
    let df = parse(b"\xef\xbb\xbfFROM a\r\nRUN b \\\r\n c\r\n").unwrap();
    assert_eq!(df.dump(), "(from \"a\")\n(run \"b  c\")");
}

/// Name, content, expand, chomp, file descriptor.
type Doc = (String, String, bool, bool, u32);

#[test]
fn heredoc_delimiters_quoting_and_bodies() {
    let src = "FROM base
USER <<NOTHERE
EXPOSE 80
RUN 4<<NONE
NONE
RUN \"<<QUOTED\"
RUN <<-TABS
\tx
\tTABS
RUN <<-'LIT'
\tkeep $V
LIT
COPY <<ONE <<TWO /dst
TWO
ONE
ONE
TWO
RUN --mount=type=cache,target=/c <<M python3
# not a comment
M
RUN <<ab'c'
x
abc
RUN <<ab\\'c
x
ab'c
RUN <<'a b'
x
a b
RUN <<$V
$V
RUN <<   SP   > out
SP
";
    let df = parse(src.as_bytes()).unwrap();
    let got: Vec<Vec<Doc>> = df.instructions[1..]
        .iter()
        .map(|i| {
            i.heredocs
                .iter()
                .map(|h| {
                    (
                        h.name.clone(),
                        h.content.clone(),
                        h.expand,
                        h.chomp,
                        h.file_descriptor,
                    )
                })
                .collect()
        })
        .collect();
    let h = |name: &str, content: &str, expand: bool, chomp: bool, fd: u32| {
        (name.to_string(), content.to_string(), expand, chomp, fd)
    };
    let want = vec![
        vec![],
        vec![], // USER takes no heredoc: the next line is an instruction
        vec![h("NONE", "", true, false, 4)],
        vec![],
        vec![h("TABS", "\tx\n", true, true, 0)],
        vec![h("LIT", "\tkeep $V\n", false, true, 0)],
        vec![
            h("ONE", "TWO\n", true, false, 0),
            h("TWO", "ONE\n", true, false, 0),
        ],
        vec![h("M", "# not a comment\n", true, false, 0)],
        vec![h("abc", "x\n", false, false, 0)],
        vec![h("ab'c", "x\n", true, false, 0)],
        vec![h("a b", "x\n", false, false, 0)],
        vec![h("$V", "", true, false, 0)],
        vec![h("SP", "", true, false, 0)],
    ];
    assert_eq!(got, want);
}
