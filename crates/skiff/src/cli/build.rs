//! `skiff build` and `skiff builder prune`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::build_progress;
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
    /// Images to consider as cache sources
    #[arg(long = "cache-from", value_name = "strings", value_delimiter = ',')]
    pub cache_from: Vec<String>,
    /// Squash newly built layers into a single new layer
    #[arg(long)]
    pub squash: bool,
    /// Clamp timestamps to SOURCE_DATE_EPOCH (0 when unset) for byte-identical images
    #[arg(long)]
    pub reproducible: bool,
    /// Output destination (format: "type=local|tar|oci|docker,dest=path", docker: ",name=tag")
    #[arg(short = 'o', long = "output", value_name = "stringArray")]
    pub output: Option<String>,
    /// Set platform if server is multi-platform capable (only the host's platform)
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")
    #[arg(long = "secret", value_name = "stringArray")]
    pub secrets: Vec<String>,
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
    /// Remove all unused build cache, not just dangling ones (skiff's cache has no dangling
    /// entries apart: every prune removes all of it)
    #[arg(short, long)]
    pub all: bool,
}

pub fn run_builder_prune(g: &GlobalOptions, a: BuilderPruneArgs) -> Result<()> {
    // Every entry is reclaimable (no build holds the cache between commands), so with or
    // without --all the whole cache goes, and the prompt says so: docker's --all wording.
    let _ = a.all;
    if !a.force
        && !confirm(
            "WARNING! This will remove all build cache. Are you sure you want to continue?",
        )?
    {
        return Ok(());
    }
    let engine = g.engine()?;
    CacheDb::open(engine.root())?.prune()?;
    // The layers and snapshots only the cache referred to go with it.
    // Cache mounts (`RUN --mount=type=cache`) no build is using go too.
    let mounts = build::prune_cache_mounts(&engine)?;
    let report = crate::ops::gc::collect_garbage(&engine)?;
    println!(
        "Total reclaimed space: {}",
        human_size(report.bytes_removed + mounts)
    );
    Ok(())
}

/// `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]` values read, as buildx reads them:
/// without `src` or `env`, the variable named ID if it is set, else the file named ID.
fn parse_secrets(raw: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for spec in raw {
        let bad = |m: String| PlainError::invalid(format!("invalid secret {spec:?}: {m}"));
        let (mut id, mut src, mut env, mut typ) = (None, None, None, None);
        for field in spec.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                return Err(
                    bad(format!("invalid field '{field}' must be a key=value pair")).into(),
                );
            };
            match k.to_ascii_lowercase().as_str() {
                "type" if v == "file" || v == "env" => typ = Some(v.to_owned()),
                "type" => return Err(bad(format!("unsupported secret type {v:?}")).into()),
                "id" => id = Some(v.to_owned()),
                "source" | "src" => src = Some(v.to_owned()),
                "env" => env = Some(v.to_owned()),
                k => return Err(bad(format!("unexpected key '{k}' in '{field}'")).into()),
            }
        }
        if typ.as_deref() == Some("env") && env.is_none() {
            env = src.take();
        }
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            return Err(bad("secret ID missing".to_owned()).into());
        };
        if env.is_none() && src.is_none() {
            if std::env::var_os(&id).is_some() {
                env = Some(id.clone());
            } else {
                src = Some(id.clone());
            }
        }
        let value = match (env, src) {
            (Some(var), _) => std::env::var_os(&var)
                .map(|v| std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec())
                .unwrap_or_default(),
            (None, Some(path)) => {
                let meta = fs::metadata(&path).map_err(|e| {
                    PlainError::invalid(format!(
                        "failed to stat {path}: stat {path}: {}",
                        if e.kind() == io::ErrorKind::NotFound {
                            "no such file or directory".to_owned()
                        } else {
                            e.to_string()
                        }
                    ))
                })?;
                // BuildKit's limit.
                if meta.len() > 500 * 1024 {
                    return Err(PlainError::invalid(format!(
                        "secret {id} too big. max size 500KB"
                    ))
                    .into());
                }
                fs::read(&path).with_context(|| format!("reading secret {path}"))?
            }
            (None, None) => Vec::new(),
        };
        out.insert(id, value);
    }
    Ok(out)
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
            unpack_context(input, dir.path()).context("unpacking the build context from stdin")?;
        } else {
            dockerfile_bytes = Some(input);
        }
        let p = dir.path().to_owned();
        stdin_dir = Some(dir);
        p
    } else if build::git::is_git_url(&a.context) {
        let dir = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(engine.tmp_dir()?)?;
        let p = build::git::checkout(&a.context, dir.path(), true, "unable to prepare context")?;
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
            unpack_context(input, dir.path())
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
        secrets: parse_secrets(&a.secrets)?,
        cache_from: a.cache_from.clone(),
    };

    let quiet = a.quiet || a.progress == "quiet";
    // An image or tree written to stdout leaves stdout to it: progress goes to stderr.
    let to_stdout = export.as_ref().is_some_and(|e| e.dest.as_os_str() == "-");
    let progress_kind = if to_stdout && a.progress == "auto" {
        "plain"
    } else {
        a.progress.as_str()
    };
    let mut renderer = build_progress::renderer(progress_kind, quiet, &opts.context);
    // With -q the line is only shown if the build fails, so the walk waits until then.
    if !quiet && !matches!(progress_kind, "plain" | "tty") {
        renderer.note(&sending_line(&opts.context));
    }
    // Every build, whatever it shows, leaves its record and log (`skiff buildx history`).
    let mut progress = build_progress::Recorder::start(engine.root(), &opts, renderer);
    let result = build::build(&engine, &opts, &mut progress);
    drop(stdin_dir);
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            progress.fail(&e);
            return Err(e);
        }
    };
    let built = if a.squash {
        match build::squash(&engine, &built, opts.source_date_epoch) {
            Ok(b) => b,
            Err(e) => {
                progress.fail(&e);
                return Err(e);
            }
        }
    } else {
        built
    };
    let outputs = (|| -> Result<()> {
        if let Some(export) = &export {
            build::export(&engine, &built, export)?;
        }
        if let Some(path) = &a.iidfile {
            fs::write(path, built.id.to_string())
                .with_context(|| format!("writing image ID file {}", path.display()))?;
        }
        Ok(())
    })();
    if let Err(e) = outputs {
        progress.fail(&e);
        return Err(e);
    }
    progress.finish(&built.id, &built.tags, &built.unused_args);
    if quiet && !to_stdout {
        println!("{}", built.id);
    }
    Ok(())
}

fn parse_output(spec: &str) -> Result<build::Export> {
    let mut kind = None;
    let mut dest = None;
    let mut name = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", t)) => kind = Some(t.to_owned()),
            Some(("dest", d)) => dest = Some(d.to_owned()),
            Some(("name", n)) => name = Some(n.to_owned()),
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
        Some("oci") => ExportKind::Oci,
        Some("docker") => ExportKind::Docker,
        Some(other) => {
            return Err(PlainError::invalid(format!(
                "output type {other:?} is not supported (local, tar, oci, docker)"
            ))
            .into())
        }
        None => return Err(PlainError::invalid("output type is required").into()),
    };
    // Only the docker exporter names (tags) the image.
    let name = match (&kind, name) {
        (_, None) => None,
        (ExportKind::Docker, Some(n)) => Some(
            parse_new_tag(&n)
                .map_err(|e| PlainError::invalid(format!("invalid output name {n:?}: {e}")))?,
        ),
        (_, Some(_)) => {
            return Err(PlainError::invalid(
                "unsupported output attribute \"name\" (only type=docker takes a name)",
            )
            .into())
        }
    };
    let dest = dest.ok_or_else(|| PlainError::invalid("output dest is required"))?;
    Ok(build::Export {
        kind,
        dest: PathBuf::from(dest),
        name,
    })
}

/// A context tar (plain or compressed) unpacked into `dir`.
fn unpack_context(input: Vec<u8>, dir: &std::path::Path) -> Result<()> {
    skiff_snapshot::layer::apply_layer(
        BufReader::new(io::Cursor::new(input)),
        dir,
        &skiff_snapshot::layer::ApplyOptions {
            whiteouts: skiff_snapshot::layer::WhiteoutMode::Remove,
        },
    )?;
    Ok(())
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
pub(super) fn sending_line(context: &std::path::Path) -> String {
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
    human_size(total)
}
