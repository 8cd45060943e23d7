//! BuildKit's parser and word-expansion tables, kept unchanged in `tests/testdata/buildkit`
//! (data files from moby/buildkit, Apache-2.0, LICENSE beside them) so that any clone of the
//! repository runs them, with or without the shared checkout next to it.

use std::fs;
use std::path::PathBuf;

use skiff_build::parser;
use skiff_build::shell::{EnvList, Lexer};

fn testdata() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testdata/buildkit"
    ));
    assert!(
        dir.is_dir(),
        "BuildKit test data not found at {}",
        dir.display()
    );
    dir
}

fn cases(dir: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(testdata().join(dir))
        .expect("test data directory is readable")
        .map(|e| {
            let e = e.expect("test data entry is readable");
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {dir}");
    out
}

#[test]
fn buildkit_parser_cases_dump_like_buildkit() {
    let mut failures = Vec::new();
    let all = cases("parser/testfiles");
    for (name, dir) in &all {
        let src = fs::read(dir.join("Dockerfile")).unwrap();
        let expected = fs::read_to_string(dir.join("result")).unwrap();
        match parser::parse(&src) {
            Ok(df) if df.dump() + "\n" == expected => {}
            Ok(df) => failures.push(format!(
                "{name}: dump differs\n--- expected\n{expected}--- got\n{}\n",
                df.dump()
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{}/{} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_negative_parser_cases_fail() {
    for (name, dir) in cases("parser/testfiles-negative") {
        let src = fs::read(dir.join("Dockerfile")).unwrap();
        if let Ok(df) = parser::parse(&src) {
            panic!("{name} parsed, as:\n{}", df.dump());
        }
    }
}

#[test]
fn buildkit_env_var_table() {
    let text = fs::read_to_string(testdata().join("shell/envVarTest")).unwrap();
    let env = EnvList(
        ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]
            .map(String::from)
            .to_vec(),
    );
    let lexer = Lexer::new('\\');
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "line {}: {line}", n + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        if platform == "W" {
            continue;
        }
        count += 1;
        let got = lexer.process_word(source, &env).map(|e| e.result);
        let ok = match &got {
            Ok(word) => expected != "error" && word == expected,
            Err(_) => expected == "error",
        };
        if !ok {
            failures.push(format!(
                "line {}: {source:?} -> {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    assert!(count > 200, "only {count} cases read");
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_words_table() {
    let text = fs::read_to_string(testdata().join("shell/wordsTest")).unwrap();
    let lexer = Lexer::new('\\');
    let mut env = EnvList::default();
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            env.0.push(assignment.trim_start_matches(' ').to_string());
            continue;
        }
        let (input, expected) = line.split_once('|').unwrap();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = lexer
            .process_words(input.trim(), &env)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!(
                "line {}: {input:?} -> {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
