//! `skiff build`: a Dockerfile and a context in, an image out, step by step as docker's
//! classic builder goes, with a persistent cache.
//!
//! skiff-build does the Dockerfile work (stages, expansion, config and history lines, cache
//! keys, sources); this module owns the engine side and prints nothing itself (progress goes
//! to a [`Progress`] sink the CLI renders). Where to start reading:
//! - this file: [`build`] — stages the target needs, their bases, the final image and tags;
//! - `step`: one instruction — cache key, hit, or the work on a fresh snapshot;
//! - `copy`: COPY/ADD sources (context, stages, images, heredocs, URLs) and their hashes;
//! - `layer`: snapshots prepared and mounted, changes streamed into a stored layer, chains
//!   re-applied when missing, and the clean-up after builds that were killed;
//! - `mounts`: `RUN --mount` (cache, bind, tmpfs, secret): key parts, host side, prune;
//! - `runner`: the [`skiff_build::executor::Executor`] that runs RUN in a container;
//! - `schedule`: independent stages built in parallel, their output shown in file order;
//! - `cache_db`: `build-cache.db` (step results, file content digests by stat);
//! - `cache_from`: `--cache-from` images standing in for steps that miss the cache;
//! - `export`: `-o type=local|tar|oci|docker`;
//! - `squash`: `--squash`, the layers above the final stage's base merged into one.

mod cache_db;
mod cache_from;
mod copy;
mod export;
pub mod git;
pub mod history;
mod incremental;
mod layer;
mod mounts;
mod runner;
mod schedule;
mod squash;
mod step;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use skiff_build::cache::{explain, KeyInput};
use skiff_build::context::{copy_into, CopyOptions, SourceRoot};
use skiff_build::dispatch::{CopyStep, Effect, RunStep, StageState};
use skiff_build::executor::{Executor, RunRequest};
use skiff_build::ignore::Ignore;
use skiff_build::instructions::{split_stages, Stage};
use skiff_build::parser::{self, Instruction};
use skiff_image::reference::Reference;
use skiff_image::spec::{format_rfc3339, History, ImageConfig, Platform, RootFs};
use skiff_image::store::LayerRecord;
use skiff_image::Digest;

use super::engine::Engine;
use super::error::{OpError, PlainError};
use super::new_image::{config_bytes, store_image, ImageParts};
use super::registry::pull::{pull, PullEvent, PullOptions};
use super::resolve;

pub use cache_db::CacheDb;
pub use export::{export, Export, ExportKind};
pub use mounts::prune_cache_mounts;
pub use squash::{squash, Base};

/// Where the Dockerfile comes from.
pub enum DockerfileSource {
    /// A path (absolute, or relative to the current directory).
    Path(PathBuf),
    /// Its bytes (`-f -`, or a context tar that holds it).
    Bytes(Vec<u8>),
}

/// What the user asked for.
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    /// The Dockerfile's name for messages and `<name>.dockerignore`.
    pub dockerfile_name: String,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub target: Option<String>,
    /// `default`, `none` or `host`.
    pub network: String,
    pub source_date_epoch: Option<i64>,
    pub explain_cache: bool,
    /// `--pull`: pull base images even when they are here.
    pub pull: bool,
    /// Registries reached over plain HTTP (the global `--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// `--secret`s by id, for `RUN --mount=type=secret` (never in keys, layers or history).
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `--cache-from`: images whose history may stand in for steps that miss the cache.
    pub cache_from: Vec<String>,
}

/// Progress of a build, as the CLI renders it (classic or plain).
pub trait Progress {
    /// A step starts: `n` of `total`, the instruction as written.
    fn step(&mut self, n: usize, total: usize, text: &str);
    /// The base image of a FROM (`None` for scratch).
    fn base(&mut self, id: Option<&Digest>);
    /// A step's result came from the cache.
    fn cached(&mut self, id: &Digest);
    /// A step runs (a container id for RUN, for docker's "Running in").
    fn running(&mut self, container: &str);
    /// Where a RUN's output goes.
    fn run_output(&mut self) -> Result<OwnedFd>;
    /// A RUN ended (its output fd closed).
    fn run_done(&mut self);
    /// A step finished with this intermediate image.
    fn done(&mut self, id: &Digest, elapsed: Duration);
    /// Why a step missed the cache (`--explain-cache`).
    fn explain(&mut self, why: &str);
    /// Something to tell the user (`# Executing 1 build trigger`, warnings).
    fn note(&mut self, text: &str);
    /// The build succeeded (called by the CLI after tagging and exporting).
    fn finish(&mut self, _id: &Digest, _tags: &[Reference], _unused_args: &[String]) {}
    /// The build failed (called by the CLI before it reports the error).
    fn failed(&mut self) {}
}

/// The result of a build.
pub struct Built {
    pub id: Digest,
    pub tags: Vec<Reference>,
    /// Build args nobody declared.
    pub unused_args: Vec<String>,
    /// The final image's layers (for `-o`).
    pub layers: Vec<LayerRecord>,
    /// The final stage's base (for `--squash`; `None` if it could not be found again).
    pub base: Option<Base>,
}

/// The image as it stands after a step.
#[derive(Clone)]
struct Current {
    config: ImageConfig,
    layers: Vec<LayerRecord>,
    key: String,
}

/// A random lowercase hex string of `n` characters.
pub(crate) fn random_hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&format!("{:016x}", rand_u64()));
    }
    s.truncate(n);
    s
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// docker's wording for a step that failed, as the CLI prints it (no daemon prefix).
fn step_failed(message: String) -> anyhow::Error {
    PlainError::new(skiff_image::ErrorKind::InvalidArgument, message).into()
}

/// Reads the Dockerfile and the `.dockerignore` that applies to it.
fn read_inputs(opts: &BuildOptions) -> Result<(Vec<u8>, Ignore)> {
    let bytes = match &opts.dockerfile {
        DockerfileSource::Bytes(b) => b.clone(),
        DockerfileSource::Path(p) => fs::read(p).map_err(|e| {
            PlainError::invalid(format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: {}",
                p.display(),
                if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file or directory".to_owned()
                } else {
                    e.to_string()
                }
            ))
        })?,
    };
    let mut ignore_text = None;
    if let DockerfileSource::Path(p) = &opts.dockerfile {
        let specific = PathBuf::from(format!("{}.dockerignore", p.display()));
        if let Ok(t) = fs::read_to_string(&specific) {
            ignore_text = Some(t);
        }
    }
    if ignore_text.is_none() {
        ignore_text = fs::read_to_string(opts.context.join(".dockerignore")).ok();
    }
    Ok((bytes, Ignore::parse(&ignore_text.unwrap_or_default())))
}

/// The stages the target needs, in file order.
fn needed_stages(stages: &[Stage], target: usize) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !needed.insert(i) {
            continue;
        }
        todo.extend(
            schedule::refs(&stages[i])
                .iter()
                .filter_map(|r| schedule::resolve(stages, i, r)),
        );
    }
    needed
}

struct Builder<'a> {
    engine: &'a Engine,
    opts: &'a BuildOptions,
    cache: CacheDb,
    ignore: Ignore,
    executor: Option<runner::RuntimeExecutor>,
    progress: &'a mut dyn Progress,
    /// Results of finished stages, by index.
    done: BTreeMap<usize, Current>,
    /// Protects the blobs this build writes from GC until the image refers to them (taken on
    /// the first miss: a fully cached build writes nothing).
    lease: Option<skiff_image::store::Lease<'a>>,
    /// Cache keys that hit, marked used in one transaction at the end.
    hits: Vec<String>,
    step: usize,
    total: usize,
    escape: char,
    /// Stage names (lower case) and indexes.
    stage_names: Vec<(String, usize)>,
    /// Whether the last step missed the cache (so the next one's parent is new).
    missed: bool,
    /// Content digests of context files by stat (loaded on the first COPY).
    file_digests: Option<cache_db::FileDigests>,
    /// The remote sources of the current ADD, downloaded to hash them.
    downloaded: Option<(tempfile::TempDir, Vec<String>)>,
    /// Whether what killed builds left behind was cleaned up (before the first new tree).
    swept: bool,
    /// The `--cache-from` images, loaded on the first miss.
    cache_from: Option<Vec<cache_from::Source>>,
    /// When this builds one stage among others in parallel: the way to the scheduler.
    link: Option<schedule::Link>,
}

impl<'a> Builder<'a> {
    fn new(
        engine: &'a Engine,
        opts: &'a BuildOptions,
        progress: &'a mut dyn Progress,
        ignore: Ignore,
        total: usize,
        escape: char,
        stage_names: Vec<(String, usize)>,
    ) -> Result<Builder<'a>> {
        Ok(Builder {
            engine,
            opts,
            cache: CacheDb::open(engine.root())?,
            ignore,
            executor: None,
            progress,
            done: BTreeMap::new(),
            lease: None,
            hits: Vec::new(),
            step: 0,
            total,
            escape,
            stage_names,
            missed: false,
            file_digests: None,
            downloaded: None,
            swept: false,
            cache_from: None,
            link: None,
        })
    }
}

/// Runs the build.
pub fn build(engine: &Engine, opts: &BuildOptions, progress: &mut dyn Progress) -> Result<Built> {
    let (bytes, ignore) = read_inputs(opts)?;
    let df = parser::parse(&bytes).map_err(|e| OpError::invalid(e.to_string()))?;
    let mut stages =
        split_stages(&df, &opts.build_args).map_err(|e| OpError::invalid(e.to_string()))?;
    // docker appends one LABEL step per --label, sorted, to the Dockerfile.
    if !opts.labels.is_empty() {
        let mut text = String::new();
        for (k, v) in &opts.labels {
            text.push_str(&format!("LABEL {}={}\n", quote_label(k), quote_label(v)));
        }
        let mut extra =
            parser::parse(text.as_bytes()).map_err(|e| OpError::invalid(e.to_string()))?;
        // docker shows these steps as `LABEL k=v`.
        for (ins, (k, v)) in extra.instructions.iter_mut().zip(&opts.labels) {
            ins.original = format!("LABEL {k}={v}");
        }
        if let Some(last) = stages.stages.last_mut() {
            last.instructions.extend(extra.instructions);
        }
    }
    let target = match &opts.target {
        Some(t) => stages.find(t).map(|s| s.index).ok_or_else(|| {
            OpError::invalid(format!("failed to reach build target {t} in Dockerfile"))
        })?,
        None => stages.stages.len() - 1,
    };
    let needed = needed_stages(&stages.stages, target);
    let total = stages.meta_instructions.len()
        + needed
            .iter()
            .map(|i| stages.stages[*i].instructions.len() + 1)
            .sum::<usize>();

    let mut b = Builder::new(
        engine,
        opts,
        progress,
        ignore,
        total,
        df.escape,
        stages
            .stages
            .iter()
            .filter_map(|s| s.name.clone().map(|n| (n, s.index)))
            .collect(),
    )?;
    for ins in &stages.meta_instructions {
        b.step += 1;
        b.progress.step(b.step, total, &ins.original);
    }
    let mut consumed: BTreeSet<String> = stages.meta_args.iter().map(|(k, _)| k.clone()).collect();
    let deps = schedule::dependencies(&stages.stages, &needed);
    if schedule::is_chain(&deps) {
        for i in needed.iter().copied() {
            let stage = stages.stages[i].clone();
            let (current, used) = b.build_stage(&stage, &stages.meta_args)?;
            consumed.extend(used);
            b.done.insert(i, current);
        }
    } else {
        let plan = schedule::Plan {
            stages: &stages.stages,
            meta_args: &stages.meta_args,
            first_step: schedule::first_steps(
                stages.meta_instructions.len(),
                &stages.stages,
                &needed,
            ),
            deps,
        };
        consumed.extend(schedule::run(&mut b, &plan)?);
    }
    let Some(result) = b.done.remove(&target) else {
        anyhow::bail!("stage {target} was not built");
    };
    let base = squash::stage_base(&b, &stages.stages[target]);
    b.cache.touch(&b.hits)?;
    let bytes = config_bytes(&result.config);
    let id = Digest::of_bytes(&bytes);
    // A fully cached build gives an image that is already stored: only its tags move.
    let id = if engine.meta.image(&id)?.is_some() {
        for tag in &opts.tags {
            engine.meta.tag(&tag.to_string(), &id)?;
        }
        id
    } else {
        store_image(
            engine,
            ImageParts {
                config: &bytes,
                layers: &result.layers,
                manifest: None,
                parent: None,
            },
            &opts.tags,
        )?
        .image
        .id
    };
    // Cached layers are not leased: make sure GC did not take one meanwhile.
    for l in &result.layers {
        if !engine.content.exists(&l.blob) {
            anyhow::bail!(
                "layer {} was removed while the build ran (a concurrent prune?); run the build again",
                l.blob
            );
        }
    }
    let unused_args = opts
        .build_args
        .keys()
        .filter(|k| {
            !consumed.contains(*k) && !skiff_build::dispatch::BUILTIN_ARGS.contains(&k.as_str())
        })
        .cloned()
        .collect();
    Ok(Built {
        id,
        tags: opts.tags.clone(),
        unused_args,
        layers: result.layers,
        base,
    })
}

/// `k` quoted for a synthetic LABEL line when it needs it.
fn quote_label(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
    )
}

impl Builder<'_> {
    fn created(&self) -> String {
        let t = match self.opts.source_date_epoch {
            Some(e) => time::OffsetDateTime::from_unix_timestamp(e)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            None => time::OffsetDateTime::now_utc(),
        };
        format_rfc3339(t)
    }

    /// A finished stage named `name` (or with that index) before stage `before`.
    fn stage_result(&self, name: &str, before: usize) -> Option<Current> {
        let lower = name.to_ascii_lowercase();
        let index = self
            .stage_names
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, i)| *i)
            .or_else(|| name.parse::<usize>().ok())?;
        if index >= before {
            return None;
        }
        if let Some(c) = self.done.get(&index) {
            return Some(c.clone());
        }
        // In a parallel build, an earlier stage this one did not name (an ONBUILD trigger's
        // COPY --from) may still be building.
        self.link.as_ref()?.wait_stage(index)
    }

    /// An image in the store, as a build base.
    fn image(&mut self, name: &str) -> Result<Current> {
        let mut found = if self.opts.pull {
            None
        } else {
            resolve::lookup(self.engine, name)?
        };
        if found.is_none() {
            // As docker's builder does: a base that is not here is pulled, its progress
            // shown in the build's output.
            let lines = std::sync::Mutex::new(Vec::new());
            let on = |ev: PullEvent| {
                let text = match ev {
                    PullEvent::PullingFrom { reference, path } => {
                        Some(format!("{reference}: Pulling from {path}"))
                    }
                    PullEvent::Layer { id, status }
                        if status == "Pull complete" || status == "Already exists" =>
                    {
                        Some(format!("{id}: {status}"))
                    }
                    PullEvent::Digest(d) => Some(format!("Digest: {d}")),
                    PullEvent::Status(s) => Some(format!("Status: {s}")),
                    _ => None,
                };
                if let (Some(t), Ok(mut l)) = (text, lines.lock()) {
                    l.push(t);
                }
            };
            let opts = PullOptions {
                max_concurrent: 3,
                insecure: self.opts.insecure_registries.clone(),
                ..PullOptions::default()
            };
            let pulled = pull(self.engine, name, &opts, &on);
            for line in lines.into_inner().unwrap_or_default() {
                self.progress.note(&line);
            }
            pulled?;
            found = resolve::lookup(self.engine, name)?;
        }
        let image = found.ok_or_else(|| resolve::no_such_image(name))?;
        let id = image.image.id.clone();
        let config: ImageConfig = serde_json::from_slice(&self.engine.content.read_blob(&id)?)
            .with_context(|| format!("reading the config of {id}"))?;
        let layers = self.engine.meta.layers(&id)?;
        Ok(Current {
            config,
            layers,
            key: format!("image:{id}"),
        })
    }

    /// The base of a stage: an earlier stage, scratch, or an image in the store.
    fn base(&mut self, stage: &Stage) -> Result<Current> {
        if let Some(p) = &stage.platform {
            let host = Platform::host();
            let want = format!("{}/{}", host.os, host.architecture);
            if p != &want && !p.starts_with(&format!("{want}/")) && !p.is_empty() {
                return Err(OpError::invalid(format!(
                    "FROM --platform={p}: skiff builds only for the host platform ({want})"
                ))
                .into());
            }
        }
        if let Some(c) = self.stage_result(&stage.base, stage.index) {
            let id = Digest::of_bytes(&config_bytes(&c.config));
            self.progress.base(Some(&id));
            return Ok(c);
        }
        if stage.base.eq_ignore_ascii_case("scratch") {
            let p = Platform::host();
            self.progress.base(None);
            return Ok(Current {
                config: ImageConfig {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant,
                    rootfs: RootFs::layers(Vec::new()),
                    ..ImageConfig::default()
                },
                layers: Vec::new(),
                key: "scratch".to_owned(),
            });
        }
        let c = self.image(&stage.base)?;
        let id = Digest::of_bytes(&config_bytes(&c.config));
        self.progress.base(Some(&id));
        Ok(c)
    }

    fn build_stage(
        &mut self,
        stage: &Stage,
        meta_args: &[(String, Option<String>)],
    ) -> Result<(Current, BTreeSet<String>)> {
        self.step += 1;
        self.progress
            .step(self.step, self.total, &stage.from.original);
        let mut current = self.base(stage)?;
        self.missed = false;
        let has_triggers = current
            .config
            .config
            .as_ref()
            .and_then(|c| c.on_build.as_ref())
            .is_some_and(|t| !t.is_empty());
        if stage.instructions.is_empty() && !has_triggers {
            // `FROM x` alone is x itself, as with docker.
            return Ok((current, BTreeSet::new()));
        }
        // A new image does not inherit these from its base.
        current.config.author = None;
        current.config.comment = None;
        current.config.docker_version = None;
        current.config.parent = None;
        let mut state = StageState::new(
            current.config.clone(),
            meta_args,
            &self.opts.build_args,
            self.escape,
        );
        let triggers = state.take_triggers();
        current.config = state.config.clone();
        if !triggers.is_empty() {
            self.progress.note(&format!(
                "# Executing {} build trigger{}",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            for t in &triggers {
                let parsed =
                    parser::parse(t.as_bytes()).map_err(|e| OpError::invalid(e.to_string()))?;
                for ins in &parsed.instructions {
                    if let Some(link) = &self.link {
                        link.check()?;
                    }
                    current = self.step_one(&mut state, current, ins)?;
                }
            }
        }
        for ins in &stage.instructions {
            if let Some(link) = &self.link {
                link.check()?;
            }
            self.step += 1;
            self.progress.step(self.step, self.total, &ins.original);
            current = self.step_one(&mut state, current, ins)?;
        }
        Ok((current, state.consumed.clone()))
    }
}

/// A temporary file for a RUN's output, and a descriptor on it for the RUN.
pub fn capture() -> Result<(File, OwnedFd)> {
    let f = tempfile::tempfile()?;
    let fd: OwnedFd = f.try_clone()?.into();
    Ok((f, fd))
}

/// Reads all of `file` from its start (a RUN's captured output).
pub fn read_captured(file: &mut File) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Where `-f NAME` points: absolute, else relative to the current directory, else to the
/// context.
pub fn dockerfile_in(context: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_owned()
    } else {
        // docker's CLI resolves -f against the current directory.
        let cwd_rel = std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_default();
        if cwd_rel.exists() {
            cwd_rel
        } else {
            context.join(p)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stages_the_target_needs_are_built() {
        let df = parser::parse(
            b"FROM a AS one\nFROM b AS two\nFROM one AS three\nCOPY --from=1 /x /x\nFROM c AS four\nCOPY --from=three /y /y\n",
        )
        .unwrap();
        let stages = split_stages(&df, &BTreeMap::new()).unwrap().stages;
        let all: Vec<usize> = needed_stages(&stages, 3).into_iter().collect();
        assert_eq!(all, [0, 1, 2, 3]);
        let some: Vec<usize> = needed_stages(&stages, 2).into_iter().collect();
        assert_eq!(some, [0, 1, 2]);
        let one: Vec<usize> = needed_stages(&stages, 1).into_iter().collect();
        assert_eq!(one, [1]);
    }
}
