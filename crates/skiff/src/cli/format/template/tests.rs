//! Execution tests: expected outputs and error texts are those of Go's
//! `text/template` over decoded JSON, with docker's function map.

use serde_json::{json, Value};

use super::{Node, Template};

fn data() -> Value {
    json!({
        "Name": "web",
        "Num": 42,
        "Neg": -3,
        "F": 1.5,
        "Big": 1_000_000.0,
        "On": true,
        "Off": false,
        "Empty": "",
        "Null": null,
        "Arr": ["a", "b", "c"],
        "Mixed": ["x", 1, null, {"k": "v"}],
        "NoItems": [],
        "Map": {"b": "x", "a": 1},
        "Config": {"Env": ["PATH=/usr/bin", "FOO=bar"], "Labels": {"z": "1", "a": "2"}, "Healthcheck": null},
        "Tags": [{"Name": "v1"}, {"Name": "v2"}],
    })
}

fn run(src: &str) -> String {
    let t = Template::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    t.execute(&data()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn fail(src: &str) -> String {
    match Template::parse(src).and_then(|t| t.execute(&data())) {
        Ok(out) => panic!("{src}: unexpected success: {out:?}"),
        Err(e) => e.go_message().to_owned(),
    }
}

#[test]
fn prints_values_like_go() {
    assert_eq!(
        run("{{.Name}} {{.Num}} {{.Neg}} {{.F}} {{.Big}} {{.On}}"),
        "web 42 -3 1.5 1e+06 true"
    );
    assert_eq!(
        run("{{.Missing}}|{{.Null}}|{{.Empty}}"),
        "<no value>|<no value>|"
    );
    assert_eq!(
        run("{{.Arr}} {{.NoItems}} {{.Mixed}}"),
        "[a b c] [] [x 1 <nil> map[k:v]]"
    );
    assert_eq!(
        run("{{.Map}} {{.Config.Labels}}"),
        "map[a:1 b:x] map[a:2 z:1]"
    );
    assert_eq!(run("{{.Config.Env}}"), "[PATH=/usr/bin FOO=bar]");
    assert_eq!(run("{{.Config.Healthcheck}}"), "<no value>");
    assert_eq!(run("{{.Missing.Deeper}}"), "<no value>");
    assert_eq!(run("{{.Tags}}"), "[map[Name:v1] map[Name:v2]]");
    assert_eq!(run("a{{/* note */}}b"), "ab");
    assert_eq!(
        run("{{\"s\"}} {{`r`}} {{1}} {{1.50}} {{'a'}} {{0x10}} {{true}}"),
        "s r 1 1.5 97 16 true"
    );
    let t = Template::parse("{{.}}").expect("parse");
    assert_eq!(t.execute(&json!(null)).expect("exec"), "<no value>");
    assert_eq!(t.execute(&json!([1, 2])).expect("exec"), "[1 2]");
}

#[test]
fn trims_spaces() {
    assert_eq!(run("a  {{- .Name -}}  \n b"), "awebb");
    assert_eq!(run("{{- .Name}}\n{{- .Num -}}\n"), "web42");
    assert_eq!(run("x {{- /* c */ -}} y"), "xy");
}

#[test]
fn control_structures() {
    assert_eq!(run("{{if .On}}yes{{end}}{{if .Off}}no{{end}}"), "yes");
    assert_eq!(
        run("{{if .Empty}}a{{else if .NoItems}}b{{else if .Num}}c{{else}}d{{end}}"),
        "c"
    );
    assert_eq!(
        run("{{if .Missing}}a{{else}}b{{end}}{{if .Null}}a{{else}}b{{end}}"),
        "bb"
    );
    assert_eq!(
        run("{{with .Config}}{{.Env}}{{end}}"),
        "[PATH=/usr/bin FOO=bar]"
    );
    assert_eq!(
        run("{{with .Missing}}x{{else with .Name}}{{.}}{{end}}"),
        "web"
    );
    assert_eq!(run("{{with .Empty}}x{{else}}none{{end}}"), "none");
    assert_eq!(run("{{range .Arr}}[{{.}}]{{end}}"), "[a][b][c]");
    assert_eq!(
        run("{{range $i, $v := .Arr}}{{$i}}={{$v}} {{end}}"),
        "0=a 1=b 2=c "
    );
    assert_eq!(run("{{range $v := .Arr}}{{$v}}{{end}}"), "abc");
    assert_eq!(
        run("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}"),
        "a:2;z:1;"
    );
    assert_eq!(run("{{range .NoItems}}x{{else}}empty{{end}}"), "empty");
    assert_eq!(run("{{range .Missing}}x{{else}}none{{end}}"), "none");
    assert_eq!(
        run("{{range .Tags}}{{.Name}},{{$.Name}};{{end}}"),
        "v1,web;v2,web;"
    );
    assert_eq!(run("{{range 3}}{{.}}{{end}}"), "012");
    assert_eq!(
        run("{{range .Arr}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}"),
        "ac"
    );
    assert_eq!(
        run("{{range .Arr}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}"),
        "a"
    );
    assert_eq!(
        run("{{range .Mixed}}{{.}};{{end}}"),
        "x;1;<no value>;map[k:v];"
    );
}

#[test]
fn variables() {
    assert_eq!(run("{{$x := .Name}}{{$x}}-{{$x = .Num}}{{$x}}"), "web-42");
    assert_eq!(run("{{$n := 0}}{{range .Arr}}{{$n = .}}{{end}}{{$n}}"), "c");
    assert_eq!(
        run("{{$t := .Tags}}{{(index $t 1).Name}} {{$.Config.Env}}"),
        "v2 [PATH=/usr/bin FOO=bar]"
    );
    assert_eq!(run("{{with $c := .Config}}{{$c.Labels.a}}{{end}}"), "2");
    assert_eq!(run("{{$x := .Null}}{{$x.Foo}}"), "<no value>");
    assert_eq!(run("{{(index .Mixed 2).X}}"), "<no value>");
}

#[test]
fn docker_functions() {
    assert_eq!(
        run("{{json .Config}}"),
        r#"{"Env":["PATH=/usr/bin","FOO=bar"],"Labels":{"z":"1","a":"2"},"Healthcheck":null}"#
    );
    assert_eq!(
        run("{{json .Name}} {{json .Missing}} {{json .Num}}"),
        "\"web\" null 42"
    );
    assert_eq!(
        run("{{join .Arr \", \"}}|{{join .Config.Labels \",\"}}|{{join .Missing \",\"}}"),
        "a, b, c|1,2|"
    );
    assert_eq!(
        run("{{split \"a:b:c\" \":\"}} {{len (split .Name \"\")}}"),
        "[a b c] 3"
    );
    assert_eq!(
        run("{{title \"hello world\"}} {{upper .Name}} {{lower \"ABC\"}}"),
        "Hello World WEB abc"
    );
    assert_eq!(
        run("{{truncate .Name 2}}|{{truncate .Name 10}}|{{truncate \"héllo\" 2}}"),
        "we|web|h"
    );
    assert_eq!(run("[{{pad .Name 1 2}}][{{pad .Empty 1 2}}]"), "[ web  ][]");
    assert_eq!(run("{{.Name | upper | printf \"<%s>\"}}"), "<WEB>");
}

#[test]
fn go_builtins() {
    assert_eq!(
        run("{{printf \"%-5s|%3d|%05.1f|%q|%v\" .Name .Num .F .Name .Arr}}"),
        "web  | 42|001.5|\"web\"|[a b c]"
    );
    assert_eq!(
        run("{{print .Num .Num \"s\" .Missing}} {{println .Name .Num}}"),
        "42 42s<nil> web 42\n"
    );
    assert_eq!(run("{{len .Arr}} {{len .Map}} {{len .Name}}"), "3 2 3");
    assert_eq!(run("{{index .Arr 1}} {{index .Map \"a\"}} {{index .Config \"Labels\" \"z\"}} {{index .Map \"zz\"}}"), "b 1 1 <no value>");
    assert_eq!(
        run("{{index .Name 0}} {{slice .Arr 1}} {{slice .Name 1 2}}"),
        "119 [b c] e"
    );
    assert_eq!(run("{{not .On}} {{and .On .Name}} {{and .On .Empty .Num}} {{or .Empty .Missing .Num}} {{or .Off .Empty}}"), "false web  42 ");
    assert_eq!(
        run("{{and .Off .Missing.X.Y}} {{or .On (index .Arr 99)}}"),
        "false true"
    );
    assert_eq!(run("{{eq .Name \"web\"}} {{eq .Num 1 2 42}} {{ne .Num 42}} {{eq .Missing \"x\"}} {{eq .Missing nil}}"), "true true false false true");
    assert_eq!(
        run("{{lt .Num 50}} {{le .Num 42}} {{gt .Name \"abc\"}} {{ge .F 1.5}} {{lt -1 .Num}}"),
        "true true true true true"
    );
    assert_eq!(
        run("{{html \"<a & 'b'>\"}} {{urlquery \"a b/c\"}} {{js \"it's\"}} {{html .Missing}}"),
        "&lt;a &amp; &#39;b&#39;&gt; a+b%2Fc it\\'s &lt;no value&gt;"
    );
}

#[test]
fn execution_errors_match_go() {
    let at = |loc: &str, ctx: &str, msg: &str| {
        format!("template: :{loc}: executing \"\" at <{ctx}>: {msg}")
    };
    assert_eq!(fail("{{nil}}"), at("1:2", "nil", "nil is not a command"));
    assert_eq!(
        fail("{{.Null.X}}"),
        at("1:7", ".Null.X", "nil pointer evaluating interface {}.X")
    );
    assert_eq!(
        fail("{{.Name.X}}"),
        at(
            "1:7",
            ".Name.X",
            "can't evaluate field X in type interface {}"
        )
    );
    assert_eq!(
        fail("{{.Arr.X}}"),
        at(
            "1:6",
            ".Arr.X",
            "can't evaluate field X in type interface {}"
        )
    );
    assert_eq!(
        fail("{{.Map 1}}"),
        at("1:2", ".Map", "Map is not a method but has arguments")
    );
    assert_eq!(
        fail("ab\n  {{lower .Num}}"),
        at(
            "2:10",
            ".Num",
            "wrong type for value; expected string; got int"
        )
    );
    assert_eq!(
        fail("{{lower .Missing}}"),
        at("1:8", ".Missing", "invalid value; expected string")
    );
    assert_eq!(
        fail("{{lower .Null}}"),
        at(
            "1:8",
            ".Null",
            "wrong type for value; expected string; got interface {}"
        )
    );
    assert_eq!(
        fail("{{.Missing | lower}}"),
        at("1:13", "lower", "invalid value; expected string")
    );
    assert_eq!(
        fail("{{lower 5}}"),
        at("1:8", "5", "expected string; found 5")
    );
    assert_eq!(
        fail("{{truncate .Name \"x\"}}"),
        at("1:17", "\"x\"", "expected integer; found \"x\"")
    );
    assert_eq!(
        fail("{{join .Arr}}"),
        at("1:2", "join", "wrong number of args for join: want 2 got 1")
    );
    assert_eq!(
        fail("{{printf}}"),
        at(
            "1:2",
            "printf",
            "wrong number of args for printf: want at least 1 got 0"
        )
    );
    assert_eq!(
        fail("{{index .Arr 5}}"),
        at(
            "1:2",
            "index .Arr 5",
            "error calling index: index out of range: 5"
        )
    );
    assert_eq!(
        fail("{{.Num | len}}"),
        at("1:9", "len", "error calling len: len of type int")
    );
    assert_eq!(
        fail("{{join .Name \",\"}}"),
        at(
            "1:2",
            "join .Name \",\"",
            "error calling join: expected slice, got string"
        )
    );
    assert_eq!(
        fail("{{eq .Num 1.5}}"),
        at(
            "1:2",
            "eq .Num 1.5",
            "error calling eq: incompatible types for comparison"
        )
    );
    assert_eq!(
        fail("{{lt .Arr 1}}"),
        at(
            "1:2",
            "lt .Arr 1",
            "error calling lt: invalid type for comparison"
        )
    );
    assert_eq!(
        fail("{{range .Name}}{{end}}"),
        at("1:8", ".Name", "range can't iterate over web")
    );
    assert_eq!(
        fail("{{\"x\" 1}}"),
        at("1:2", "\"x\"", "can't give argument to non-function \"x\"")
    );
    assert_eq!(
        fail("{{(index .Mixed 0).X}}"),
        at("1:16", "0", "can't evaluate field X in type string")
    );
}

#[test]
fn missing_key_error_option() {
    let t = Template::parse("{{.Name}} {{.Nope}}")
        .expect("parse")
        .missing_key_error(true);
    let err = t.execute(&data()).map_err(|e| e.to_string());
    let want = "template parsing error: template: :1:12: executing \"\" at <.Nope>: map has no entry for key \"Nope\"";
    assert_eq!(err, Err(want.to_owned()));
    let t = Template::parse("{{.Missing.X}}")
        .expect("parse")
        .missing_key_error(true);
    assert!(t.execute(&data()).is_err());
}

#[test]
fn header_mode_uses_identity_functions() {
    let headers = json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Labels": "LABELS"});
    let t = Template::parse(
        "{{truncate .ID 3}}\t{{json .Image}}\t{{join .Labels \",\"}}\t{{lower .Image}}",
    )
    .expect("parse");
    assert_eq!(
        t.execute_header(&headers),
        "CONTAINER ID\tIMAGE\tLABELS\tIMAGE"
    );
    // Errors keep the partial output, as docker's ignored header error does.
    let t = Template::parse("{{.ID}} {{json .Nope}} tail").expect("parse");
    assert_eq!(t.execute_header(&headers), "CONTAINER ID ");
}

#[test]
fn node_strings_like_go() {
    let t = Template::parse("{{$x := (index .A 1).B | printf \"%v\" $.C}}").expect("parse");
    let Some(Node::Action(p)) = t.root.first() else {
        panic!("not an action")
    };
    assert_eq!(p.to_string(), "$x := (index .A 1).B | printf \"%v\" $.C");
}

#[test]
fn locations() {
    let t = Template::parse("ab\ncd{{.X}}").expect("parse");
    assert_eq!(t.location(7), ":2:4");
    assert_eq!(t.location(1), ":1:1");
}

#[test]
fn go_type_names_and_printf_details() {
    let at = |loc: &str, ctx: &str, msg: &str| {
        format!("template: :{loc}: executing \"\" at <{ctx}>: {msg}")
    };
    // A map element is an interface{}; a pipeline result is its dynamic type.
    assert_eq!(
        fail("{{.Num.X}}"),
        at(
            "1:6",
            ".Num.X",
            "can't evaluate field X in type interface {}"
        )
    );
    assert_eq!(
        fail("{{$n := .Num}}{{$n.X}}"),
        at("1:18", "$n.X", "can't evaluate field X in type int")
    );
    assert_eq!(
        fail("{{template \"x\"}}"),
        at("1:11", "{{template \"x\"}}", "template \"x\" not defined")
    );
    assert_eq!(
        fail("{{(.Name) 2}}"),
        at(
            "1:2",
            "(.Name) 2",
            "can't give argument to non-function .Name"
        )
    );
    assert_eq!(
        fail("{{index .Map nil}}"),
        at(
            "1:2",
            "index .Map nil",
            "error calling index: value is nil; should be of type string"
        )
    );
    assert_eq!(
        run("{{range .Mixed}}{{printf \"%T,\" .}}{{end}}"),
        "string,int,<nil>,map[string]interface {},"
    );
    assert_eq!(
        run("{{printf \"%s|%+v|%#x|%U\" .Mixed .Num .Name .Num}}"),
        "[x %!s(int=1) <nil> map[k:v]]|42|0x776562|U+002A"
    );
    assert_eq!(run("{{printf \"%-8.2f|\" .Neg}}"), "%!f(int=-03     )|");
    assert_eq!(
        run("{{upper \"ß straße\"}} {{lower \"İSTANBUL ΣΑΣ\"}} {{title \"ǆemal ñu\"}}"),
        "ß STRAßE istanbul σασ ǅemal Ñu"
    );
}

#[test]
fn parses_valid_templates() {
    for src in [
        "",
        "plain text",
        "{{.}}",
        "{{- .A.B -}}",
        "{{$}}{{$.A}}",
        "{{$x := .A}}{{$x = .B}}{{$x.C}}",
        "{{if .A}}a{{else if .B}}b{{else}}c{{end}}",
        "{{with .A}}{{.}}{{else with .B}}{{.}}{{end}}",
        "{{range $i, $v := .}}{{$i}}{{$v}}{{break}}{{continue}}{{else}}none{{end}}",
        "{{(index . 0).Name}}",
        "{{printf \"%s %d\" .A 1 | lower}}",
        "{{'a'}} {{0x1F}} {{1.5e3}} {{-2}} {{`raw`}} {{true}} {{nil | print}}",
        "{{/* comment */}}",
        "{{json .\n}}",
    ] {
        assert!(Template::parse(src).is_ok(), "{src}");
    }
}

#[test]
fn typed_data_refuses_unknown_fields_but_not_map_keys() {
    let data = json!({"ID": "abc", "Labels": {"a": "b"}, "Nested": {"X": 1}});
    let t = |src: &str| {
        Template::parse(src)
            .unwrap()
            .typed("*formatter.imageContext", &["Labels"])
            .execute(&data)
    };
    assert_eq!(t("{{.ID}}").unwrap(), "abc");
    assert_eq!(
        t("{{.Bogus}}").unwrap_err().to_string(),
        "template parsing error: template: :1:2: executing \"\" at <.Bogus>: can't evaluate field Bogus in type *formatter.imageContext"
    );
    assert!(
        t("{{.Nested.Y}}").is_err(),
        "nested objects are structs too"
    );
    assert_eq!(t("{{.Labels.zz}}").unwrap(), "<no value>");
    // Untyped, a missing key is just missing.
    let plain = Template::parse("{{.Bogus}}")
        .unwrap()
        .execute(&data)
        .unwrap();
    assert_eq!(plain, "<no value>");
}

#[test]
fn typed_data_marshals_html_escaped() {
    let data = json!({"Repository": "<none>", "Tag": "a&b"});
    let typed = Template::parse("{{json .}} {{json .Repository}}")
        .unwrap()
        .typed("*formatter.imageContext", &[]);
    assert_eq!(
        typed.execute(&data).unwrap(),
        r#"{"Repository":"\u003cnone\u003e","Tag":"a\u0026b"} "<none>""#
    );
}
