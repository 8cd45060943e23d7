//! From the parse tree to what a build needs: instruction flags checked against the ones each
//! instruction accepts, and the Dockerfile split into stages (`FROM ... AS name`) with the
//! meta `ARG`s declared before the first `FROM`. Errors name the line, in docker's words.

use std::collections::BTreeMap;

use crate::parser::{Dockerfile, Instruction, Keyword};
use crate::shell::{EnvList, Lexer};

/// An instruction docker would refuse, with its (1-based) line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct InstructionError {
    pub line: usize,
    pub message: String,
}

impl InstructionError {
    pub fn new(ins: &Instruction, message: impl Into<String>) -> Self {
        InstructionError {
            line: ins.start_line,
            message: message.into(),
        }
    }
}

/// The `--name[=value]` flags of one instruction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Parses `ins.flags`, refusing any flag not in `allowed` with docker's `Unknown flag: x`.
    pub fn parse(ins: &Instruction, allowed: &[&str]) -> Result<Flags, InstructionError> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for raw in &ins.flags {
            let body = raw.trim_start_matches('-');
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, v.to_owned()),
                None => (body, "true".to_owned()),
            };
            if !allowed.contains(&name) {
                return Err(InstructionError::new(ins, format!("Unknown flag: {name}")));
            }
            values.entry(name.to_owned()).or_default().push(value);
        }
        Ok(Flags { values })
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value given for `name` (`--mount` may repeat).
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// A boolean flag: present (`--link`, `--link=true`) and not `false`.
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
}

/// One stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Position among the stages, from 0.
    pub index: usize,
    /// `AS name`, lower-cased as docker compares it.
    pub name: Option<String>,
    /// The base, expanded with the meta args (`scratch`, an image, or an earlier stage's name).
    pub base: String,
    /// `--platform` of the FROM, expanded.
    pub platform: Option<String>,
    /// The FROM itself.
    pub from: Instruction,
    /// The instructions after it.
    pub instructions: Vec<Instruction>,
}

/// The stages of a Dockerfile and the ARGs declared before its first FROM.
#[derive(Debug, Clone)]
pub struct Stages {
    /// Meta args in declaration order, with their values (build arg, else default, expanded).
    pub meta_args: Vec<(String, Option<String>)>,
    /// The instructions before the first FROM (only ARGs), for step numbering.
    pub meta_instructions: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

impl Stages {
    /// The stage named `name` (case-insensitively) or with index `name`.
    pub fn find(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

/// Splits `df` into stages, expanding FROM lines with the meta args (`build_args` override
/// their defaults).
pub fn split_stages(
    df: &Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> Result<Stages, InstructionError> {
    let lexer = Lexer::new(df.escape);
    let mut meta_args: Vec<(String, Option<String>)> = platform_args();
    let mut meta_instructions = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == Keyword::From {
            let flags = Flags::parse(ins, &["platform"])?;
            let env = EnvList(
                meta_args
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect(),
            );
            let expand = |w: &str| {
                lexer
                    .process_word(w, &env)
                    .map(|e| e.result)
                    .map_err(|e| InstructionError::new(ins, e.to_string()))
            };
            let (base, name) = match ins.args.as_slice() {
                [image] => (image.clone(), None),
                [image, kw, name] if kw.eq_ignore_ascii_case("as") => {
                    (image.clone(), Some(name.to_ascii_lowercase()))
                }
                _ => {
                    return Err(InstructionError::new(
                        ins,
                        "FROM requires either one or three arguments",
                    ))
                }
            };
            let base = expand(&base)?;
            if base.is_empty() {
                return Err(InstructionError::new(
                    ins,
                    "base name (${BASE}) should not be blank",
                ));
            }
            if let Some(n) = &name {
                if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                    return Err(InstructionError::new(ins, format!("duplicate name {n}")));
                }
            }
            let platform = flags.get("platform").map(expand).transpose()?;
            stages.push(Stage {
                index: stages.len(),
                name,
                base,
                platform,
                from: ins.clone(),
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins.clone()),
            None if ins.keyword == Keyword::Arg => {
                let env = EnvList(
                    meta_args
                        .iter()
                        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                        .collect(),
                );
                for (name, default) in parse_arg_words(ins, &lexer, &env)? {
                    let value = build_args.get(&name).cloned().or(default);
                    meta_args.retain(|(k, _)| k != &name);
                    meta_args.push((name, value));
                }
                meta_instructions.push(ins.clone());
            }
            None => {
                return Err(InstructionError::new(
                    ins,
                    "no build stage in current context",
                ))
            }
        }
    }
    if stages.is_empty() {
        return Err(InstructionError {
            line: df.instructions.last().map_or(1, |i| i.end_line),
            message: "no build stage in current context".to_owned(),
        });
    }
    Ok(Stages {
        meta_args,
        meta_instructions,
        stages,
    })
}

/// BuildKit's predefined platform args, for the host (skiff builds only for it).
pub fn platform_args() -> Vec<(String, Option<String>)> {
    let p = skiff_image::spec::Platform::host();
    let platform = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    let mut out = Vec::new();
    for prefix in ["BUILD", "TARGET"] {
        out.push((format!("{prefix}PLATFORM"), Some(platform.clone())));
        out.push((format!("{prefix}OS"), Some(p.os.clone())));
        out.push((format!("{prefix}ARCH"), Some(p.architecture.clone())));
        out.push((
            format!("{prefix}VARIANT"),
            Some(p.variant.clone().unwrap_or_default()),
        ));
    }
    out
}

/// The `name[=default]` pairs of an ARG, defaults expanded against `env`.
pub fn parse_arg_words(
    ins: &Instruction,
    lexer: &Lexer,
    env: &EnvList,
) -> Result<Vec<(String, Option<String>)>, InstructionError> {
    if ins.args.is_empty() {
        return Err(InstructionError::new(
            ins,
            "ARG requires at least one argument",
        ));
    }
    let mut out = Vec::new();
    for word in &ins.args {
        let (name, default) = match word.split_once('=') {
            Some((n, v)) => {
                let v = lexer
                    .process_word(v, env)
                    .map_err(|e| InstructionError::new(ins, e.to_string()))?
                    .result;
                (n.to_owned(), Some(v))
            }
            None => (word.clone(), None),
        };
        if name.is_empty() {
            return Err(InstructionError::new(ins, "ARG names can not be blank"));
        }
        out.push((name, default));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::parser::parse;

    #[test]
    fn stages_expand_meta_args_and_keep_names() {
        let df = parse(b"ARG V=1\nARG IMG=base\nFROM $IMG:$V AS Build\nRUN x\nFROM scratch\nCOPY --from=build /a /a\n").unwrap();
        let mut args = BTreeMap::new();
        args.insert("V".to_owned(), "2".to_owned());
        let s = split_stages(&df, &args).unwrap();
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[0].base, "base:2");
        assert_eq!(s.stages[0].name.as_deref(), Some("build"));
        assert_eq!(s.find("BUILD").map(|s| s.index), Some(0));
        assert_eq!(s.find("1").map(|s| s.index), Some(1));
        assert_eq!(s.meta_instructions.len(), 2);
    }

    #[test]
    fn instructions_before_from_are_refused() {
        let df = parse(b"RUN x\nFROM a\n").unwrap();
        let e = split_stages(&df, &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 1);
        let df = parse(b"FROM a\nCOPY --frm=x a b\n").unwrap();
        let f = Flags::parse(&df.instructions[1], &["from"]).unwrap_err();
        assert_eq!(
            f.to_string(),
            "dockerfile parse error on line 2: Unknown flag: frm"
        );
    }
}
