//! Build cache keys. A step's key is the digest of an explicit, versioned input: the parent's
//! key, the normalized instruction (its history line, which docker also compares), the build
//! args it sees, the content digests of what it copies, and what else changes its result.
//! [`KeyInput`] is destructured without `..` where it is encoded, so a field added later
//! cannot stay out of the key by accident.

use skiff_image::digest::Hasher;

/// Bumped whenever the encoding or the meaning of a field changes: old entries then miss.
pub const KEY_VERSION: &str = "skiff-build-cache-v1";

/// Everything a step's result depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInput<'a> {
    /// The previous step's key, or `image:<id>` / `scratch` for a stage's FROM.
    pub parent: &'a str,
    /// The normalized instruction: its `created_by` (COPY/ADD: before the content hash).
    pub instruction: &'a str,
    /// `KEY=value` of the build args the step sees (RUN).
    pub build_args: &'a [String],
    /// Content digests of COPY/ADD sources (and of a `--from` stage's key).
    pub sources: &'a [String],
    /// RUN's environment, user, working directory and network; COPY's owner and mode.
    pub execution: &'a [String],
    /// `SOURCE_DATE_EPOCH`, which changes timestamps in the result.
    pub source_date_epoch: Option<i64>,
}

impl KeyInput<'_> {
    /// The bytes hashed: one line per field, lists length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let KeyInput {
            parent,
            instruction,
            build_args,
            sources,
            execution,
            source_date_epoch,
        } = self;
        let mut out = Vec::new();
        let mut field = |name: &str, values: &[&str]| {
            out.extend_from_slice(format!("{name} {}\n", values.len()).as_bytes());
            for v in values {
                out.extend_from_slice(format!("{}:{v}\n", v.len()).as_bytes());
            }
        };
        field("version", &[KEY_VERSION]);
        field("parent", &[parent]);
        field("instruction", &[instruction]);
        field("build_args", &refs(build_args));
        field("sources", &refs(sources));
        field("execution", &refs(execution));
        let epoch = source_date_epoch.map(|e| e.to_string()).unwrap_or_default();
        field("source_date_epoch", &[&epoch]);
        out
    }

    /// The key: `sha256:<hex>` of [`KeyInput::encode`].
    pub fn key(&self) -> String {
        let mut h = Hasher::new();
        h.update(&self.encode());
        h.finish().to_string()
    }
}

/// Which input of two keys differs, for `--explain-cache`: the parent, a build arg, a
/// copied file, the execution options, the instruction itself.
pub fn explain(old: &KeyInput<'_>, new: &KeyInput<'_>) -> Option<String> {
    if old.parent != new.parent {
        return Some("the previous step changed".to_owned());
    }
    if old.build_args != new.build_args {
        let name = |a: &String| a.split_once('=').map_or(a.clone(), |(k, _)| k.to_owned());
        let mut changed: Vec<String> = new
            .build_args
            .iter()
            .filter(|a| !old.build_args.contains(a))
            .chain(
                old.build_args
                    .iter()
                    .filter(|a| !new.build_args.contains(a)),
            )
            .map(name)
            .collect();
        changed.dedup();
        return Some(format!("build arg {} changed", changed.join(", ")));
    }
    if old.sources != new.sources {
        // Entries are `path=digest` per source (the first is the digest of them all).
        let changed: Vec<String> = new
            .sources
            .iter()
            .skip(1)
            .filter(|s| !old.sources.contains(s))
            .map(|s| s.rsplit_once('=').map_or(s.clone(), |(p, _)| p.to_owned()))
            .collect();
        return Some(if changed.is_empty() {
            "the copied files changed".to_owned()
        } else {
            format!("file {} changed", changed.join(", "))
        });
    }
    if old.execution != new.execution {
        return Some("the environment, user or options changed".to_owned());
    }
    if old.instruction != new.instruction {
        return Some(format!(
            "the instruction changed (was {:?})",
            old.instruction
        ));
    }
    if old.source_date_epoch != new.source_date_epoch {
        return Some("SOURCE_DATE_EPOCH changed".to_owned());
    }
    None
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_are_stable() {
        let args = vec!["A=1".to_owned()];
        let k = KeyInput {
            parent: "scratch",
            instruction: "/bin/sh -c true",
            build_args: &args,
            ..KeyInput::default()
        };
        assert_eq!(
            String::from_utf8_lossy(&k.encode()),
            "version 1\n20:skiff-build-cache-v1\nparent 1\n7:scratch\ninstruction 1\n15:/bin/sh -c true\nbuild_args 1\n3:A=1\nsources 0\nexecution 0\nsource_date_epoch 1\n0:\n"
        );
        let other = KeyInput {
            build_args: &[],
            ..k.clone()
        };
        assert_ne!(k.key(), other.key());
        assert_eq!(explain(&other, &k).as_deref(), Some("build arg A changed"));
    }
}
