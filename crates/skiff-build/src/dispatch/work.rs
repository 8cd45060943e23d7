//! RUN, COPY and ADD: resolved into the work the caller does (a command with its
//! environment, user and working directory; sources and a destination with their options).

use super::*;

impl StageState {
    pub(super) fn run(&mut self, ins: &Instruction) -> Result<Effect, InstructionError> {
        let flags = Flags::parse(ins, &["network", "mount", "security"])?;
        let network = flags.get("network").unwrap_or("default").to_owned();
        if !matches!(network.as_str(), "default" | "none" | "host") {
            return Err(InstructionError::new(
                ins,
                format!("unsupported network mode {network:?}"),
            ));
        }
        let workdir = self
            .config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .unwrap_or_default();
        let mut mounts = Vec::new();
        for m in flags.all("mount") {
            let expand = |w: &str| {
                self.lexer
                    .process_word(w, &self.expansion_env())
                    .map(|e| e.result)
                    .map_err(|e| e.to_string())
            };
            mounts.push(
                crate::mounts::parse_mount(m, &workdir, &expand)
                    .map_err(|e| InstructionError::new(ins, e.0))?,
            );
        }
        let mut args = self.command_line(ins);
        if !ins.heredocs.is_empty() && !ins.json {
            // `RUN <<EOF`: the body is the script, run by the shell.
            let doc = &ins.heredocs[0];
            let body = if doc.chomp {
                crate::parser::chomp_heredoc_content(&doc.content)
            } else {
                doc.content.clone()
            };
            let mut shell = self.shell();
            shell.push(body);
            args = shell;
        }
        let scope = self.args_in_scope();
        let mut env: Vec<String> = scope.iter().map(|(k, v, _)| format!("{k}={v}")).collect();
        env.extend(self.env().iter().cloned());
        let build_args: Vec<String> = scope
            .iter()
            .filter(|(_, _, declared)| *declared)
            .map(|(k, v, _)| format!("{k}={v}"))
            .collect();
        let joined = args.join(" ");
        let created_by = if build_args.is_empty() {
            joined.clone()
        } else {
            format!("|{} {} {joined}", build_args.len(), build_args.join(" "))
        };
        let rc = self.config.config.clone().unwrap_or_default();
        Ok(Effect::Run(RunStep {
            args,
            env,
            user: rc.user.unwrap_or_default(),
            workdir: rc
                .working_dir
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
            network,
            build_args,
            created_by,
            display: joined,
            mounts,
        }))
    }

    pub(super) fn copy(&mut self, ins: &Instruction) -> Result<Effect, InstructionError> {
        let add = ins.keyword == Keyword::Add;
        let allowed: &[&str] = if add {
            &[
                "chown",
                "chmod",
                "link",
                "checksum",
                "keep-git-dir",
                "exclude",
            ]
        } else {
            &["from", "chown", "chmod", "link", "parents", "exclude"]
        };
        let flags = Flags::parse(ins, allowed)?;
        let name = if add { "ADD" } else { "COPY" };
        if ins.args.len() < 2 {
            return Err(InstructionError::new(
                ins,
                format!("{name} requires at least two arguments, but only one was provided. Destination could not be determined."),
            ));
        }
        let mut words = Vec::new();
        for w in &ins.args {
            words.push(self.expand(ins, w)?);
        }
        let dest_written = words.pop().unwrap_or_default();
        let workdir = self
            .config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .unwrap_or_default();
        let dest = normalize_dest(&workdir, &dest_written);
        let chmod = match flags.get("chmod") {
            None => None,
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                InstructionError::new(ins, format!("invalid chmod parameter: {m}"))
            })?),
        };
        let chown = flags
            .get("chown")
            .map(|c| self.expand(ins, c))
            .transpose()?;
        let from = flags.get("from").map(|f| self.expand(ins, f)).transpose()?;
        let parents = flags.bool("parents");
        let keep_git_dir = flags.bool("keep-git-dir");
        let mut excludes = Vec::new();
        for e in flags.all("exclude") {
            excludes.push(self.expand(ins, e)?);
        }
        // `COPY <<EOF /dst`: heredoc bodies are sources of their own.
        let mut inline = Vec::new();
        for doc in &ins.heredocs {
            let body = if doc.chomp {
                crate::parser::chomp_heredoc_content(&doc.content)
            } else {
                doc.content.clone()
            };
            let body = if doc.expand {
                // Variables expand; quotes and escapes in the body stay as written.
                let lexer = Lexer {
                    raw_quotes: true,
                    raw_escapes: true,
                    ..self.lexer
                };
                lexer
                    .process_word(&body, &self.expansion_env())
                    .map(|e| e.result)
                    .map_err(|e| InstructionError::new(ins, e.to_string()))?
            } else {
                body
            };
            inline.push((doc.name.clone(), body));
        }
        if !inline.is_empty() {
            words.retain(|w| !w.contains("<<"));
            words.extend(inline.iter().map(|(n, _)| n.clone()));
        }
        let is_url = |w: &str| {
            w.starts_with("http://") || w.starts_with("https://") || (add && is_git_source(w))
        };
        let remote = words.iter().any(|w| is_url(w));
        for w in &words {
            if is_url(w) && !add {
                return Err(InstructionError::new(ins, "source can't be a URL for COPY"));
            }
            if remote && !is_url(w) {
                return Err(InstructionError::new(
                    ins,
                    "skiff does not mix remote and local sources in one ADD yet",
                ));
            }
        }
        let checksum = flags.get("checksum").map(str::to_owned);
        if checksum.is_some() && !remote {
            return Err(InstructionError::new(
                ins,
                "checksum can't be specified for non-HTTP(S) sources",
            ));
        }
        Ok(Effect::Copy(CopyStep {
            excludes,
            inline,
            remote,
            checksum,
            add,
            sources: words,
            dest_written,
            dest,
            from,
            chown: chown.filter(|c| !c.is_empty()),
            chmod,
            parents,
            keep_git_dir,
            shell_prefix: self.shell().join(" "),
        }))
    }
}

/// Whether an ADD source is a git repository, as BuildKit tells: a git or ssh transport, an
/// scp-like `git@host:path`, or an http(s) URL whose path ends in `.git` (a `#ref:dir`
/// fragment may follow).
pub fn is_git_source(w: &str) -> bool {
    let base = w.split('#').next().unwrap_or(w);
    w.starts_with("git://")
        || w.starts_with("ssh://")
        || w.starts_with("git@")
        || ((w.starts_with("http://") || w.starts_with("https://")) && base.ends_with(".git"))
}
