#![allow(clippy::unwrap_used)]
use super::*;
use crate::parser::parse;

fn state() -> StageState {
    let mut args = BTreeMap::new();
    args.insert("B".to_owned(), "2".to_owned());
    StageState::new(ImageConfig::default(), &[], &args, '\\')
}

fn run_all(src: &str) -> (StageState, Vec<Effect>) {
    let df = parse(src.as_bytes()).unwrap();
    let mut st = state();
    let effects = df
        .instructions
        .iter()
        .map(|i| st.dispatch(i).unwrap())
        .collect();
    (st, effects)
}

fn created(e: &Effect) -> String {
    match e {
        Effect::Meta { created_by } | Effect::Workdir { created_by, .. } => created_by.clone(),
        Effect::Run(r) => r.created_by.clone(),
        Effect::Copy(c) => c.created_by("file:x"),
    }
}

#[test]
fn history_lines_are_dockers() {
    let (st, e) = run_all(
        "MAINTAINER me@x\nARG A=1\nARG B\nENV E=e1 F=\"f 2\"\nLABEL l1=v1 \"l 2\"=\"v 2\"\nRUN echo $A$B > /r2\nWORKDIR /app\nWORKDIR sub\nCOPY a.txt .\nUSER nobody\nEXPOSE 80 443/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\nSHELL [\"/bin/sh\", \"-xc\"]\nRUN echo shell\nONBUILD RUN echo onbuild\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"hi\"]\n",
    );
    let lines: Vec<String> = e.iter().map(created).collect();
    assert_eq!(
        lines,
        [
            "/bin/sh -c #(nop)  MAINTAINER me@x",
            "/bin/sh -c #(nop)  ARG A=1",
            "/bin/sh -c #(nop)  ARG B",
            "/bin/sh -c #(nop)  ENV E=e1 F=f 2",
            "/bin/sh -c #(nop)  LABEL l1=v1 l 2=v 2",
            "|2 A=1 B=2 /bin/sh -c echo $A$B > /r2",
            "/bin/sh -c #(nop) WORKDIR /app",
            "/bin/sh -c #(nop) WORKDIR /app/sub",
            "/bin/sh -c #(nop) COPY file:x in . ",
            "/bin/sh -c #(nop)  USER nobody",
            "/bin/sh -c #(nop)  EXPOSE 443/udp 80",
            "/bin/sh -c #(nop)  VOLUME [/data]",
            "/bin/sh -c #(nop)  STOPSIGNAL SIGINT",
            "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" '\\x02'}",
            "/bin/sh -xc #(nop)  SHELL [/bin/sh -xc]",
            "|2 A=1 B=2 /bin/sh -xc echo shell",
            "/bin/sh -xc #(nop)  ONBUILD RUN echo onbuild",
            "/bin/sh -xc #(nop)  ENTRYPOINT [\"/bin/echo\"]",
            "/bin/sh -xc #(nop)  CMD [\"hi\"]",
        ]
    );
    let rc = st.config.config.unwrap();
    assert_eq!(
        rc.env.unwrap(),
        [
            format!("PATH={DEFAULT_PATH}"),
            "E=e1".into(),
            "F=f 2".into()
        ]
    );
    assert_eq!(rc.working_dir.as_deref(), Some("/app/sub"));
    assert_eq!(rc.cmd.unwrap(), ["hi"]);
    assert_eq!(st.config.author.as_deref(), Some("me@x"));
    let ports: Vec<_> = rc.exposed_ports.unwrap().into_keys().collect();
    assert_eq!(ports, ["443/udp", "80/tcp"]);
}

#[test]
fn entrypoint_resets_cmd_from_the_base_only() {
    let df = parse(b"ENTRYPOINT [\"a\"]\nCMD [\"b\"]\nENTRYPOINT c\n").unwrap();
    let base = ImageConfig {
        config: Some(RunConfig {
            cmd: Some(vec!["sh".into()]),
            ..RunConfig::default()
        }),
        ..ImageConfig::default()
    };
    let mut st = StageState::new(base, &[], &BTreeMap::new(), '\\');
    st.dispatch(&df.instructions[0]).unwrap();
    assert_eq!(st.config.config.as_ref().unwrap().cmd, None);
    st.dispatch(&df.instructions[1]).unwrap();
    st.dispatch(&df.instructions[2]).unwrap();
    let rc = st.config.config.unwrap();
    assert_eq!(rc.cmd.unwrap(), ["b"]);
    assert_eq!(rc.entrypoint.unwrap(), ["/bin/sh", "-c", "c"]);
}

#[test]
fn env_overrides_args_and_dest_normalizes() {
    let (_, e) = run_all("ARG A=1\nENV A=2\nRUN echo\n");
    let Effect::Run(r) = &e[2] else { panic!() };
    assert_eq!(r.created_by, "/bin/sh -c echo");
    assert!(r.env.contains(&"A=2".to_owned()));
    assert_eq!(normalize_dest("/app", "."), "/app/");
    assert_eq!(normalize_dest("", "x/"), "/x/");
    assert_eq!(normalize_dest("/a", "../b"), "/b");
}
