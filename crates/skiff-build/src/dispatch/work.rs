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
        if !flags.all("mount").is_empty() {
            return Err(InstructionError::new(
                ins,
                "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled",
            ));
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
        if flags.bool("parents") {
            return Err(InstructionError::new(
                ins,
                "COPY --parents is not supported by skiff yet",
            ));
        }
        if flags.get("keep-git-dir").is_some() {
            return Err(InstructionError::new(
                ins,
                "ADD --keep-git-dir applies to git sources, which skiff does not fetch yet",
            ));
        }
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
        let is_url = |w: &str| w.starts_with("http://") || w.starts_with("https://");
        let remote = words.iter().any(|w| is_url(w));
        for w in &words {
            if w.starts_with("git@") || w.ends_with(".git") || (w.contains("://") && !is_url(w)) {
                return Err(InstructionError::new(
                    ins,
                    format!("{name} of git sources is not supported by skiff yet: {w}"),
                ));
            }
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
            shell_prefix: self.shell().join(" "),
        }))
    }
}
