//! Git sources: a build context (`skiff build https://host/repo.git#ref:dir`) and `ADD` of
//! a repository, fetched with the `git` command as docker's CLI and BuildKit do.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::ops::error::PlainError;

/// docker's `urlutil.IsGitURL`.
pub fn is_git_url(s: &str) -> bool {
    let base = s.split('#').next().unwrap_or(s);
    s.starts_with("git://")
        || s.starts_with("git@")
        || s.starts_with("github.com/")
        || ((s.starts_with("http://") || s.starts_with("https://")) && base.ends_with(".git"))
}

/// Clones `URL[#ref[:dir]]` into `into` with git, as docker's CLI does for a context and
/// BuildKit for `ADD`; returns the directory asked for (the `dir` inside the checkout).
/// Without `keep_git_dir` the repository's `.git` is removed (BuildKit's ADD default).
/// Errors start with `what` (`unable to prepare context`, `ADD failed`).
pub fn checkout(spec: &str, into: &Path, keep_git_dir: bool, what: &str) -> Result<PathBuf> {
    let (url, fragment) = spec.split_once('#').unwrap_or((spec, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let url = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_owned()
    };
    let git = |args: &[&str], dir: Option<&Path>| -> Result<()> {
        let mut cmd = std::process::Command::new("git");
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| PlainError::invalid(format!("{what}: unable to find 'git': {e}")))?;
        if !out.status.success() {
            return Err(PlainError::invalid(format!(
                "{what}: failed to fetch {spec}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .into());
        }
        Ok(())
    };
    let checkout = into.join("checkout");
    let target = checkout.to_string_lossy().into_owned();
    let shallow = if reference.is_empty() {
        git(
            &[
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--recurse-submodules",
                &url,
                &target,
            ],
            None,
        )
    } else {
        git(
            &[
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--recurse-submodules",
                "--branch",
                reference,
                &url,
                &target,
            ],
            None,
        )
    };
    if shallow.is_err() {
        // A commit id cannot be cloned shallowly by name: clone all, then check it out.
        let _ = fs::remove_dir_all(&checkout);
        git(
            &["clone", "--quiet", "--recurse-submodules", &url, &target],
            None,
        )?;
        if !reference.is_empty() {
            git(&["checkout", "--quiet", reference], Some(&checkout))?;
        }
    }
    if !keep_git_dir {
        let git_dir = checkout.join(".git");
        if git_dir.exists() {
            fs::remove_dir_all(&git_dir)
                .with_context(|| format!("removing {}", git_dir.display()))?;
        }
    }
    let dir = checkout.join(subdir.trim_start_matches('/'));
    let dir = fs::canonicalize(&dir)
        .map_err(|_| PlainError::invalid(format!("{what}: path {subdir:?} not found in {url}")))?;
    if !dir.starts_with(fs::canonicalize(&checkout)?) {
        return Err(
            PlainError::invalid(format!("{what}: {subdir:?} leaves the repository")).into(),
        );
    }
    Ok(dir)
}
