//! `skiff build` and `skiff builder prune`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use skiff_image::Digest;

use super::format::human_size;
use super::output::confirm;
use super::GlobalOptions;
use crate::ops::build::{self, BuildOptions, CacheDb, DockerfileSource, ExportKind, Progress};
use crate::ops::error::PlainError;
use crate::ops::tag::parse_new_tag;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set the target build stage to build
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set the networking mode for the RUN instructions during build ("default", "none", "host")
    #[arg(long, default_value = "default", value_name = "MODE")]
    pub network: String,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, default_value = "auto", value_name = "TYPE",
          value_parser = ["auto", "plain", "tty", "quiet"])]
    pub progress: String,
    /// Say, for each step that missed the cache, which input changed
    #[arg(long = "explain-cache")]
    pub explain_cache: bool,
    /// Clamp timestamps to SOURCE_DATE_EPOCH (0 when unset) for byte-identical images
    #[arg(long)]
    pub reproducible: bool,
    /// Output destination (format: "type=local,dest=path" or "type=tar,dest=path")
    #[arg(short = 'o', long = "output", value_name = "stringArray")]
    pub output: Option<String>,
    /// Set platform if server is multi-platform capable (only the host's platform)
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Remove intermediate containers after a successful build (always the case)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, hide = true)]
    pub rm: bool,
    /// Always remove intermediate containers (always the case)
    #[arg(long = "force-rm", hide = true)]
    pub force_rm: bool,
    /// Build context: a directory, or "-" for a tar (or a Dockerfile) on stdin
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
}

pub fn run_builder_prune(g: &GlobalOptions, a: BuilderPruneArgs) -> Result<()> {
    let _ = a.all;
    if !a.force
        && !confirm("WARNING! This will remove all dangling build cache. Are you sure you want to continue?")?
    {
        return Ok(());
    }
    let engine = g.engine()?;
    CacheDb::open(engine.root())?.prune()?;
    // The layers and snapshots only the cache referred to go with it.
    let report = crate::ops::gc::collect_garbage(&engine)?;
    println!(
        "Total reclaimed space: {}",
        human_size(report.bytes_removed)
    );
    Ok(())
}

fn parse_kv(what: &str, raw: &[String], from_env: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in raw {
        match item.split_once('=') {
            Some((k, v)) => {
                if what == "label" && k.contains(char::is_whitespace) {
                    return Err(PlainError::invalid(format!(
                        "invalid argument {item:?} for \"--label\" flag: label '{k}' contains whitespaces"
                    ))
                    .into());
                }
                out.insert(k.to_owned(), v.to_owned());
            }
            None if from_env => {
                // docker: `--build-arg NAME` takes the value from the environment, if set.
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            None => {
                out.insert(item.clone(), String::new());
            }
        }
    }
    Ok(out)
}

pub fn run(g: &GlobalOptions, a: BuildArgs) -> Result<()> {
    if let Some(p) = &a.platform {
        let host = skiff_image::spec::Platform::host();
        let want = format!("{}/{}", host.os, host.architecture);
        if p != &want && !p.starts_with(&format!("{want}/")) {
            return Err(PlainError::invalid(format!(
                "platform {p} is not supported: skiff builds for the host platform ({want})"
            ))
            .into());
        }
    }
    if !matches!(a.network.as_str(), "default" | "none" | "host" | "bridge") {
        return Err(PlainError::invalid(format!(
            "network mode {:?} not supported by the builder",
            a.network
        ))
        .into());
    }
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(parse_new_tag(t).map_err(|e| {
            PlainError::invalid(format!(
                "invalid argument {t:?} for \"-t, --tag\" flag: {e}"
            ))
        })?);
    }
    let build_args = parse_kv("build-arg", &a.build_args, true)?;
    let labels = parse_kv("label", &a.labels, false)?;
    let export = a.output.as_deref().map(parse_output).transpose()?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .map_err(|_| PlainError::invalid(format!("invalid SOURCE_DATE_EPOCH: {v}")))?,
        ),
        _ if a.reproducible => Some(0),
        _ => None,
    };
    let engine = g.engine()?;

    // The context: a directory, or stdin (a tar to unpack, or a bare Dockerfile).
    let mut stdin_dir: Option<tempfile::TempDir> = None;
    let mut dockerfile_bytes: Option<Vec<u8>> = None;
    if a.file.as_deref() == Some("-") {
        if a.context == "-" {
            return Err(PlainError::invalid(
                "invalid argument: can't use stdin for both build context and dockerfile",
            )
            .into());
        }
        let mut b = Vec::new();
        io::stdin().read_to_end(&mut b)?;
        dockerfile_bytes = Some(b);
    }
    let context: PathBuf = if a.context == "-" {
        let dir = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(engine.tmp_dir()?)?;
        let mut input = Vec::new();
        io::stdin().read_to_end(&mut input)?;
        if is_tar(&input) {
            skiff_snapshot::layer::apply_layer(
                BufReader::new(io::Cursor::new(input)),
                dir.path(),
                &skiff_snapshot::layer::ApplyOptions {
                    whiteouts: skiff_snapshot::layer::WhiteoutMode::Remove,
                },
            )
            .context("unpacking the build context from stdin")?;
        } else {
            dockerfile_bytes = Some(input);
        }
        let p = dir.path().to_owned();
        stdin_dir = Some(dir);
        p
    } else if is_git_url(&a.context) {
        let dir = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(engine.tmp_dir()?)?;
        let p = git_context(&a.context, dir.path())?;
        stdin_dir = Some(dir);
        p
    } else if a.context.starts_with("http://") || a.context.starts_with("https://") {
        let dir = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(engine.tmp_dir()?)?;
        let response = ureq::get(&a.context).call().map_err(|e| {
            PlainError::invalid(format!(
                "unable to prepare context: unable to download remote context {}: {e}",
                a.context
            ))
        })?;
        let mut input = Vec::new();
        response
            .into_body()
            .into_reader()
            .read_to_end(&mut input)
            .with_context(|| format!("downloading {}", a.context))?;
        if is_tar(&input) {
            skiff_snapshot::layer::apply_layer(
                BufReader::new(io::Cursor::new(input)),
                dir.path(),
                &skiff_snapshot::layer::ApplyOptions {
                    whiteouts: skiff_snapshot::layer::WhiteoutMode::Remove,
                },
            )
            .with_context(|| format!("unpacking the build context from {}", a.context))?;
        } else if dockerfile_bytes.is_none() {
            // docker: a remote plain-text file is the Dockerfile, with an empty context.
            dockerfile_bytes = Some(input);
        }
        let p = dir.path().to_owned();
        stdin_dir = Some(dir);
        p
    } else {
        let p = PathBuf::from(&a.context);
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => {}
            _ => {
                return Err(PlainError::invalid(format!(
                    "unable to prepare context: path {:?} not found",
                    a.context
                ))
                .into())
            }
        }
        fs::canonicalize(&p)?
    };
    let dockerfile_name = a.file.clone().unwrap_or_else(|| "Dockerfile".to_owned());
    let dockerfile = match dockerfile_bytes {
        Some(b) => DockerfileSource::Bytes(b),
        None => DockerfileSource::Path(match &a.file {
            Some(f) => build::dockerfile_in(&context, f),
            None => context.join("Dockerfile"),
        }),
    };
    let opts = BuildOptions {
        context,
        dockerfile,
        dockerfile_name,
        tags,
        build_args,
        labels,
        no_cache: a.no_cache,
        target: a.target.clone(),
        network: if a.network == "bridge" {
            "default".to_owned()
        } else {
            a.network.clone()
        },
        source_date_epoch,
        explain_cache: a.explain_cache,
        pull: a.pull,
        insecure_registries: g.insecure_registries.clone(),
    };

    let quiet = a.quiet || a.progress == "quiet";
    let mut progress: Box<dyn Progress> = if quiet {
        Box::new(Classic::quiet(opts.context.clone()))
    } else if a.progress == "plain" {
        Box::new(Plain::default())
    } else {
        Box::new(Classic::default())
    };
    // With -q the line is only shown if the build fails, so the walk waits until then.
    if !quiet && a.progress != "plain" {
        progress.note(&sending_line(&opts.context));
    }
    let result = build::build(&engine, &opts, progress.as_mut());
    drop(stdin_dir);
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            progress.failed();
            return Err(e);
        }
    };
    if let Some(export) = &export {
        build::export(&engine, &built.layers, export)?;
    }
    if let Some(path) = &a.iidfile {
        fs::write(path, built.id.to_string())
            .with_context(|| format!("writing image ID file {}", path.display()))?;
    }
    progress.finish(&built.id, &built.tags, &built.unused_args);
    if quiet {
        println!("{}", built.id);
    }
    Ok(())
}

fn parse_output(spec: &str) -> Result<build::Export> {
    let mut kind = None;
    let mut dest = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", t)) => kind = Some(t.to_owned()),
            Some(("dest", d)) => dest = Some(d.to_owned()),
            Some((k, _)) => {
                return Err(
                    PlainError::invalid(format!("unsupported output attribute {k:?}")).into(),
                )
            }
            None if kind.is_none() && dest.is_none() => {
                // `-o DIR` is `type=local,dest=DIR`; `-o -` a tar on stdout.
                if part == "-" {
                    kind = Some("tar".to_owned());
                } else {
                    kind = Some("local".to_owned());
                }
                dest = Some(part.to_owned());
            }
            None => {
                return Err(PlainError::invalid(format!("invalid output option {part:?}")).into())
            }
        }
    }
    let kind = match kind.as_deref() {
        Some("local") => ExportKind::Local,
        Some("tar") => ExportKind::Tar,
        Some(other) => {
            return Err(PlainError::invalid(format!(
                "output type {other:?} is not supported (local, tar)"
            ))
            .into())
        }
        None => return Err(PlainError::invalid("output type is required").into()),
    };
    let dest = dest.ok_or_else(|| PlainError::invalid("output dest is required"))?;
    Ok(build::Export {
        kind,
        dest: PathBuf::from(dest),
    })
}

/// docker's `urlutil.IsGitURL`.
fn is_git_url(s: &str) -> bool {
    let base = s.split('#').next().unwrap_or(s);
    s.starts_with("git://")
        || s.starts_with("git@")
        || s.starts_with("github.com/")
        || ((s.starts_with("http://") || s.starts_with("https://")) && base.ends_with(".git"))
}

/// Clones `URL[#ref[:dir]]` into `into` with git, as docker's CLI does; returns the
/// context directory (the `dir` inside the checkout).
fn git_context(spec: &str, into: &std::path::Path) -> Result<PathBuf> {
    let (url, fragment) = spec.split_once('#').unwrap_or((spec, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let url = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_owned()
    };
    let git = |args: &[&str], dir: Option<&std::path::Path>| -> Result<()> {
        let mut cmd = std::process::Command::new("git");
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                PlainError::invalid(format!(
                    "unable to prepare context: unable to find 'git': {e}"
                ))
            })?;
        if !out.status.success() {
            return Err(PlainError::invalid(format!(
                "unable to prepare context: failed to fetch {spec}: {}",
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
    let dir = checkout.join(subdir.trim_start_matches('/'));
    let dir = fs::canonicalize(&dir).map_err(|_| {
        PlainError::invalid(format!(
            "unable to prepare context: path {subdir:?} not found in {url}"
        ))
    })?;
    if !dir.starts_with(fs::canonicalize(&checkout)?) {
        return Err(PlainError::invalid(format!(
            "unable to prepare context: {subdir:?} leaves the repository"
        ))
        .into());
    }
    Ok(dir)
}

fn is_tar(bytes: &[u8]) -> bool {
    if bytes.len() >= 262 && &bytes[257..262] == b"ustar" {
        return true;
    }
    // Compressed tars: gzip, bzip2, xz, zstd.
    bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(b"BZh")
        || bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// docker's first line of a classic build.
fn sending_line(context: &std::path::Path) -> String {
    format!(
        "Sending build context to Docker daemon  {}",
        context_size(context)
    )
}

/// docker's size of the context it sends (a rough count of the files' bytes).
fn context_size(dir: &std::path::Path) -> String {
    fn walk(dir: &std::path::Path, total: &mut u64) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata() {
                    *total += 512 + m.len().div_ceil(512) * 512;
                    if m.is_dir() {
                        walk(&e.path(), total);
                    }
                }
            }
        }
    }
    let mut total = 1024;
    walk(dir, &mut total);
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = total as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{total}B")
    } else {
        format!("{}{}", trim_float(v), units[i])
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = format!("{:.4}", s.parse::<f64>().unwrap_or(v));
    let digits: usize = s.split('.').next().map_or(1, str::len);
    let prec = 4usize.saturating_sub(digits);
    let s = format!("{v:.prec$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn dup_stdout() -> Result<OwnedFd> {
    io::stdout().flush()?;
    Ok(io::stdout().as_fd().try_clone_to_owned()?)
}

fn captured() -> Result<(File, OwnedFd)> {
    let f = tempfile::tempfile()?;
    let fd: OwnedFd = f.try_clone()?.into();
    Ok((f, fd))
}

/// docker's classic builder output: on stdout, or with `-q` kept in memory and shown on
/// stderr only if the build fails (as docker's CLI does).
#[derive(Default)]
struct Classic {
    running: Option<String>,
    /// `-q`: the output so far, and the RUN output being captured.
    quiet: Option<Vec<u8>>,
    capture: Option<File>,
    /// `-q`: the context, whose size heads the output shown on failure.
    context: Option<PathBuf>,
}

impl Classic {
    fn quiet(context: PathBuf) -> Classic {
        Classic {
            quiet: Some(Vec::new()),
            context: Some(context),
            ..Classic::default()
        }
    }

    fn line(&mut self, text: &str) {
        match &mut self.quiet {
            Some(buf) => {
                buf.extend_from_slice(text.as_bytes());
                buf.push(b'\n');
            }
            None => println!("{text}"),
        }
    }
}

impl Progress for Classic {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        self.running = None;
        self.line(&format!("Step {n}/{total} : {text}"));
    }
    fn base(&mut self, id: Option<&Digest>) {
        self.line(&format!(" ---> {}", id.map_or("", |d| d.short())));
    }
    fn cached(&mut self, id: &Digest) {
        self.line(" ---> Using cache");
        self.line(&format!(" ---> {}", id.short()));
    }
    fn running(&mut self, container: &str) {
        self.line(&format!(" ---> Running in {container}"));
        self.running = Some(container.to_owned());
    }
    fn run_output(&mut self) -> Result<OwnedFd> {
        if self.quiet.is_none() {
            return dup_stdout();
        }
        let (f, fd) = captured()?;
        self.capture = Some(f);
        Ok(fd)
    }
    fn run_done(&mut self) {
        if let (Some(f), Some(buf)) = (self.capture.as_mut(), self.quiet.as_mut()) {
            if let Ok(out) = build::read_captured(f) {
                buf.extend_from_slice(&out);
            }
        }
        self.capture = None;
    }
    fn done(&mut self, id: &Digest, _: Duration) {
        if let Some(c) = self.running.take() {
            self.line(&format!("Removing intermediate container {c}"));
        }
        self.line(&format!(" ---> {}", id.short()));
    }
    fn explain(&mut self, why: &str) {
        self.line(&format!(" ---> Cache miss: {why}"));
    }
    fn note(&mut self, text: &str) {
        self.line(text);
    }
    fn finish(
        &mut self,
        id: &Digest,
        tags: &[skiff_image::reference::Reference],
        unused: &[String],
    ) {
        if !unused.is_empty() {
            self.line(&format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            ));
        }
        self.line(&format!("Successfully built {}", id.short()));
        for t in tags {
            self.line(&format!("Successfully tagged {}", t.familiar_string()));
        }
    }
    fn failed(&mut self) {
        self.run_done();
        if let Some(buf) = &self.quiet {
            let head = self
                .context
                .as_deref()
                .map(sending_line)
                .unwrap_or_default();
            let _ = writeln!(io::stderr(), "{head}");
            let _ = io::stderr().write_all(buf);
        }
    }
}

/// BuildKit-style plain progress on stderr: `#3 [2/4] RUN ...`, `#3 CACHED`, `#3 DONE 0.1s`.
#[derive(Default)]
struct Plain {
    n: usize,
    capture: Option<File>,
}

impl Progress for Plain {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        self.n = n;
        eprintln!();
        eprintln!("#{n} [{n}/{total}] {text}");
    }
    fn base(&mut self, id: Option<&Digest>) {
        if let Some(id) = id {
            eprintln!("#{} resolve {id} done", self.n);
        }
        eprintln!("#{} DONE 0.0s", self.n);
    }
    fn cached(&mut self, _: &Digest) {
        eprintln!("#{} CACHED", self.n);
    }
    fn running(&mut self, _: &str) {}
    fn run_output(&mut self) -> Result<OwnedFd> {
        let (f, fd) = captured()?;
        self.capture = Some(f);
        Ok(fd)
    }
    fn run_done(&mut self) {
        if let Some(f) = self.capture.as_mut() {
            if let Ok(out) = build::read_captured(f) {
                for line in String::from_utf8_lossy(&out).lines() {
                    eprintln!("#{} {line}", self.n);
                }
            }
        }
        self.capture = None;
    }
    fn done(&mut self, _: &Digest, elapsed: Duration) {
        eprintln!("#{} DONE {:.1}s", self.n, elapsed.as_secs_f64());
    }
    fn explain(&mut self, why: &str) {
        eprintln!("#{} cache miss: {why}", self.n);
    }
    fn note(&mut self, text: &str) {
        eprintln!("#{} {text}", self.n);
    }
    fn finish(
        &mut self,
        id: &Digest,
        tags: &[skiff_image::reference::Reference],
        unused: &[String],
    ) {
        let n = self.n + 1;
        eprintln!();
        eprintln!("#{n} exporting to image");
        eprintln!("#{n} writing image {id} done");
        for t in tags {
            eprintln!("#{n} naming to {t} done");
        }
        eprintln!("#{n} DONE 0.0s");
        if !unused.is_empty() {
            eprintln!(
                "WARNING: one or more build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
    }
    fn failed(&mut self) {}
}
