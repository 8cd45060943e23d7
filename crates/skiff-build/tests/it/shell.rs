//! Our own word-expansion cases.

use std::collections::HashMap;

use skiff_build::shell::{Lexer, NoEnv};

fn env() -> HashMap<String, String> {
    [
        ("V", "value"),
        ("E", ""),
        ("P", "/usr/local/bin"),
        ("F", "a.tar.gz"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(src: &str) -> Result<String, String> {
    Lexer::new('\\')
        .process_word(src, &env())
        .map(|e| e.result)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_and_alternatives() {
    assert_eq!(word("${V:-d} ${E:-d} ${E-d} ${U-d}").unwrap(), "value d  d");
    assert_eq!(word("${V:+x}|${E:+x}|${E+x}|${U+x}").unwrap(), "x||x|");
}

#[test]
fn required_variables_fail_with_buildkit_message() {
    assert_eq!(
        word("${E:?}").unwrap_err(),
        r#"failed to process "${E:?}": E: is not allowed to be empty"#
    );
    assert_eq!(
        word("${U?need U}").unwrap_err(),
        r#"failed to process "${U?need U}": U: need U"#
    );
    assert_eq!(word("${E?}").unwrap(), "");
}

#[test]
fn prefix_suffix_and_replacement() {
    assert_eq!(word("${P#*/}").unwrap(), "usr/local/bin");
    assert_eq!(word("${P##*/}").unwrap(), "bin");
    assert_eq!(word("${F%.*}").unwrap(), "a.tar");
    assert_eq!(word("${F%%.*}").unwrap(), "a");
    assert_eq!(word("${P/\\/usr/X}").unwrap(), "X/local/bin");
    assert_eq!(word("${P//\\//:}").unwrap(), ":usr:local:bin");
    assert!(word("${F:%x}").is_err());
}

#[test]
fn escape_token_can_be_backtick() {
    let lexer = Lexer::new('`');
    assert_eq!(
        lexer.process_word("a`$V\\b", &env()).unwrap().result,
        "a$V\\b"
    );
}

#[test]
fn matched_and_unmatched_variables_are_recorded() {
    let e = Lexer::new('\\')
        .process_word("$V ${U:-x} $E", &env())
        .unwrap();
    assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["E", "V"]);
    assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["U"]);
}

#[test]
fn skip_unset_env_keeps_references() {
    let lexer = Lexer {
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    assert_eq!(
        lexer
            .process_word("$A ${B} ${C:-d}", &NoEnv)
            .unwrap()
            .result,
        "$A ${B} ${C:-d}"
    );
}

#[test]
fn words_split_on_expanded_whitespace_but_not_quoted() {
    let mut env = env();
    env.insert("S".into(), "a  b".into());
    let lexer = Lexer::new('\\');
    assert_eq!(
        lexer.process_words("x$S \"$S\" ''", &env).unwrap(),
        ["xa", "b", "a  b"]
    );
}
