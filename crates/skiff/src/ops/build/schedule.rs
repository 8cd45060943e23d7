//! Independent stages of a multi-stage build, built at the same time.
//!
//! Each needed stage depends on the stages it names (its base, `COPY --from`, `RUN
//! --mount=...,from=`). When they form a chain, `build` keeps its one-by-one loop; otherwise
//! [`run`] starts every stage whose dependencies are done, up to one per core (at least two:
//! RUN steps mostly wait on processes and I/O). The engine's SQLite connections are not
//! shared between threads, so each worker thread opens its own [`Engine`], [`CacheDb`] and
//! executor, and builds whole stages with its own [`Builder`].
//!
//! Output reads like a sequential build: the lowest stage not yet shown goes straight to the
//! real [`Progress`] (through the main thread, which owns it); the others are kept, RUN output
//! in a temporary file each, and replayed in stage order as soon as every earlier stage was
//! shown. Step numbers are the sequential ones, computed up front. When a stage fails, stages
//! after it stop at their next step and are not shown; stages before it still finish (in a
//! sequential build they would have run first, and their own failure would be the one
//! reported), and the lowest failure is the error of the build.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use skiff_build::ignore::Ignore;
use skiff_build::instructions::Stage;
use skiff_build::parser::Keyword;
use skiff_image::Digest;

use super::{layer, runner, BuildOptions, Builder, Current, Progress};
use crate::ops::engine::Engine;

/// The stage a reference (`COPY --from=x`, a base) means, if it is one before stage `i`.
pub(super) fn resolve(stages: &[Stage], i: usize, r: &str) -> Option<usize> {
    let lower = r.to_ascii_lowercase();
    stages[..i]
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| r.parse::<usize>().ok().and_then(|n| stages[..i].get(n)))
        .map(|s| s.index)
}

/// What a stage names that may be another stage: its base and its sources.
pub(super) fn refs(stage: &Stage) -> Vec<String> {
    let mut refs = vec![stage.base.clone()];
    for ins in &stage.instructions {
        for f in &ins.flags {
            match ins.keyword {
                Keyword::Copy => {
                    if let Some(v) = f.strip_prefix("--from=") {
                        refs.push(v.to_owned());
                    }
                }
                Keyword::Run => {
                    if let Some(m) = f.strip_prefix("--mount=") {
                        refs.extend(skiff_build::mounts::mount_from(m));
                    }
                }
                _ => {}
            }
        }
    }
    refs
}

/// For each needed stage, the needed stages it waits for.
pub(super) fn dependencies(
    stages: &[Stage],
    needed: &BTreeSet<usize>,
) -> BTreeMap<usize, BTreeSet<usize>> {
    needed
        .iter()
        .map(|&i| {
            let deps = refs(&stages[i])
                .iter()
                .filter_map(|r| resolve(stages, i, r))
                .filter(|d| needed.contains(d))
                .collect();
            (i, deps)
        })
        .collect()
}

/// Whether each stage needs the one before it (then nothing can run side by side).
pub(super) fn is_chain(deps: &BTreeMap<usize, BTreeSet<usize>>) -> bool {
    let order: Vec<usize> = deps.keys().copied().collect();
    order.windows(2).all(|w| reaches(deps, w[1], w[0]))
}

fn reaches(deps: &BTreeMap<usize, BTreeSet<usize>>, from: usize, to: usize) -> bool {
    let mut todo = vec![from];
    let mut seen = BTreeSet::new();
    while let Some(s) = todo.pop() {
        if s == to {
            return true;
        }
        if seen.insert(s) {
            todo.extend(deps.get(&s).into_iter().flatten().copied());
        }
    }
    false
}

/// The step number before each needed stage's FROM, as a sequential build counts: the
/// meta ARGs, then for each needed stage in file order its FROM and its instructions.
pub(super) fn first_steps(
    meta: usize,
    stages: &[Stage],
    needed: &BTreeSet<usize>,
) -> BTreeMap<usize, usize> {
    let mut n = meta;
    let mut out = BTreeMap::new();
    for &i in needed {
        out.insert(i, n);
        n += 1 + stages[i].instructions.len();
    }
    out
}

/// How many stages run at once.
fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .max(2)
}

/// One progress event of a stage, kept until the stage is shown.
enum Ev {
    Step(usize, usize, String),
    Base(Option<Digest>),
    Cached(Digest),
    Running(String),
    /// A RUN's output, captured in this file (still being written until `RunDone`).
    Output(File),
    RunDone,
    Done(Digest, Duration),
    Explain(String),
    Note(String),
}

/// What the workers tell the main thread.
enum Msg {
    Event(usize, Ev),
    /// A stage's RUN needs a file descriptor for its output.
    Output {
        stage: usize,
        reply: Sender<Result<OwnedFd>>,
    },
    /// A stage wants the result of an earlier stage it did not declare (an ONBUILD trigger's
    /// `COPY --from`); `None` if that stage will not be built.
    Need {
        index: usize,
        reply: Sender<Option<Current>>,
    },
    /// A blob the build wrote, to be leased until the image refers to it.
    Blob(Digest),
    Finished {
        stage: usize,
        result: Box<Result<(Current, BTreeSet<String>)>>,
        hits: Vec<String>,
    },
}

/// A stage to build, with the results of the stages it depends on.
struct Job {
    stage: usize,
    done: BTreeMap<usize, Current>,
}

/// A worker's line to the scheduler, for the stage it builds.
pub(super) struct Link {
    tx: Sender<Msg>,
    stage: usize,
    stop: Arc<AtomicUsize>,
}

impl Link {
    /// Fails when an earlier stage failed: this one's result would not be used.
    pub(super) fn check(&self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) < self.stage {
            anyhow::bail!("stopped: an earlier stage failed");
        }
        Ok(())
    }

    /// The result of stage `index`, waiting for it if it is still being built.
    pub(super) fn wait_stage(&self, index: usize) -> Option<Current> {
        if index >= self.stage {
            return None;
        }
        let (reply, rx) = mpsc::channel();
        self.tx.send(Msg::Need { index, reply }).ok()?;
        rx.recv().ok().flatten()
    }

    /// Has the scheduler lease `blob` for the rest of the build.
    pub(super) fn leased(&self, blob: &Digest) {
        let _ = self.tx.send(Msg::Blob(blob.clone()));
    }
}

/// A worker's [`Progress`]: every event goes to the main thread, tagged with the stage.
struct Forward {
    tx: Sender<Msg>,
    stage: Rc<Cell<usize>>,
}

impl Forward {
    fn send(&self, ev: Ev) {
        let _ = self.tx.send(Msg::Event(self.stage.get(), ev));
    }
}

impl Progress for Forward {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        self.send(Ev::Step(n, total, text.to_owned()));
    }
    fn base(&mut self, id: Option<&Digest>) {
        self.send(Ev::Base(id.cloned()));
    }
    fn cached(&mut self, id: &Digest) {
        self.send(Ev::Cached(id.clone()));
    }
    fn running(&mut self, container: &str) {
        self.send(Ev::Running(container.to_owned()));
    }
    fn run_output(&mut self) -> Result<OwnedFd> {
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(Msg::Output {
                stage: self.stage.get(),
                reply,
            })
            .map_err(|_| anyhow!("the build was stopped"))?;
        rx.recv().map_err(|_| anyhow!("the build was stopped"))?
    }
    fn run_done(&mut self) {
        self.send(Ev::RunDone);
    }
    fn done(&mut self, id: &Digest, elapsed: Duration) {
        self.send(Ev::Done(id.clone(), elapsed));
    }
    fn explain(&mut self, why: &str) {
        self.send(Ev::Explain(why.to_owned()));
    }
    fn note(&mut self, text: &str) {
        self.send(Ev::Note(text.to_owned()));
    }
}

/// What every worker reads.
struct Shared<'s> {
    opts: &'s BuildOptions,
    stages: &'s [Stage],
    meta_args: &'s [(String, Option<String>)],
    ignore: &'s Ignore,
    total: usize,
    escape: char,
    stage_names: &'s [(String, usize)],
    first_step: &'s BTreeMap<usize, usize>,
    root: &'s std::path::Path,
    driver: &'static str,
    stop: Arc<AtomicUsize>,
}

/// The stages to build side by side and what numbers their steps.
pub(super) struct Plan<'s> {
    pub stages: &'s [Stage],
    pub meta_args: &'s [(String, Option<String>)],
    pub deps: BTreeMap<usize, BTreeSet<usize>>,
    pub first_step: BTreeMap<usize, usize>,
}

/// Builds the stages of `plan` in parallel; their results go into `b.done`, their cache hits
/// into `b.hits` and their new blobs under `b`'s lease. Returns the build args they used.
pub(super) fn run(b: &mut Builder<'_>, plan: &Plan<'_>) -> Result<BTreeSet<String>> {
    let engine = b.engine;
    // What killed builds left behind goes once, here, rather than in each worker at once.
    if !b.swept {
        b.swept = true;
        let stale = layer::stale_keys(engine)?;
        if !stale.is_empty() {
            if b.executor.is_none() {
                b.executor = Some(runner::RuntimeExecutor::new(engine.root())?);
            }
            layer::remove_stale(engine, &stale)?;
        }
    }
    // The workers' engines must use the same storage driver as this one.
    let driver = engine.snapshotter()?.driver();
    let stop = Arc::new(AtomicUsize::new(usize::MAX));
    let ignore = b.ignore.clone();
    let stage_names = b.stage_names.clone();
    let shared = Shared {
        opts: b.opts,
        stages: plan.stages,
        meta_args: plan.meta_args,
        ignore: &ignore,
        total: b.total,
        escape: b.escape,
        stage_names: &stage_names,
        first_step: &plan.first_step,
        root: engine.root(),
        driver,
        stop: stop.clone(),
    };
    let limit = parallelism();
    let (tx, rx) = mpsc::channel();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let mut sched = Scheduler {
        order: plan.deps.keys().copied().collect(),
        deps: &plan.deps,
        status: plan.deps.keys().map(|&s| (s, Status::Pending)).collect(),
        done: BTreeMap::new(),
        errors: BTreeMap::new(),
        running: 0,
        blocked: 0,
        limit,
        workers: 0,
        parked: Vec::new(),
        stop,
        head: 0,
        buffers: BTreeMap::new(),
        tail: None,
        consumed: BTreeSet::new(),
    };
    let driven = std::thread::scope(|scope| {
        let mut spawn = || {
            let tx = tx.clone();
            let shared = &shared;
            let job_rx = &job_rx;
            scope.spawn(move || worker(shared, job_rx, tx));
        };
        let driven = sched.drive(b, &rx, &job_tx, &mut spawn);
        // Workers end when the jobs run out; on an error, their stages stop at the next step.
        if driven.is_err() {
            sched.stop.store(0, Ordering::SeqCst);
        }
        drop(job_tx);
        drop(rx);
        driven
    });
    // The workers' leases ended with them: the blobs they wrote are under `b`'s by now.
    driven?;
    if let Some((_, e)) = sched.errors.into_iter().next() {
        return Err(e);
    }
    b.done.extend(sched.done);
    Ok(sched.consumed)
}

/// Clears the current job of a worker that panicked, so the scheduler does not wait for it.
struct PanicGuard {
    tx: Sender<Msg>,
    stage: Option<usize>,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if let (Some(stage), true) = (self.stage, std::thread::panicking()) {
            let _ = self.tx.send(Msg::Finished {
                stage,
                result: Box::new(Err(anyhow!("a build thread panicked"))),
                hits: Vec::new(),
            });
        }
    }
}

fn worker(shared: &Shared<'_>, jobs: &Mutex<Receiver<Job>>, tx: Sender<Msg>) {
    let next = || jobs.lock().ok().and_then(|r| r.recv().ok());
    let engine = match Engine::open(shared.root, Some(shared.driver)) {
        Ok(e) => e,
        Err(e) => {
            // Each job this worker takes fails the same way, so that none is lost.
            let msg = format!("{e:#}");
            while let Some(job) = next() {
                let _ = tx.send(Msg::Finished {
                    stage: job.stage,
                    result: Box::new(Err(anyhow!("{msg}"))),
                    hits: Vec::new(),
                });
            }
            return;
        }
    };
    let stage = Rc::new(Cell::new(0));
    let mut forward = Forward {
        tx: tx.clone(),
        stage: stage.clone(),
    };
    let mut guard = PanicGuard {
        tx: tx.clone(),
        stage: None,
    };
    let mut builder = Builder::new(
        &engine,
        shared.opts,
        &mut forward,
        shared.ignore.clone(),
        shared.total,
        shared.escape,
        shared.stage_names.to_vec(),
    );
    while let Some(job) = next() {
        guard.stage = Some(job.stage);
        let result = match &mut builder {
            Ok(b) => {
                stage.set(job.stage);
                b.swept = true;
                b.done = job.done;
                b.step = shared.first_step.get(&job.stage).copied().unwrap_or(0);
                b.link = Some(Link {
                    tx: tx.clone(),
                    stage: job.stage,
                    stop: shared.stop.clone(),
                });
                let result = b.build_stage(&shared.stages[job.stage], shared.meta_args);
                (result, std::mem::take(&mut b.hits))
            }
            Err(e) => (Err(anyhow!("{e:#}")), Vec::new()),
        };
        guard.stage = None;
        let sent = tx.send(Msg::Finished {
            stage: job.stage,
            result: Box::new(result.0),
            hits: result.1,
        });
        if sent.is_err() {
            break;
        }
    }
    // The builder (its lease, executor, trees) goes before the engine it borrows.
    drop(builder);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Running,
    Finished,
}

/// The RUN output of the stage being shown that was captured while it was not shown yet:
/// copied on to the real output, and the rest when the RUN ends.
struct Tail {
    file: File,
    offset: u64,
    out: Option<File>,
}

struct Scheduler<'p> {
    /// The needed stages in file order.
    order: Vec<usize>,
    deps: &'p BTreeMap<usize, BTreeSet<usize>>,
    status: BTreeMap<usize, Status>,
    done: BTreeMap<usize, Current>,
    errors: BTreeMap<usize, anyhow::Error>,
    running: usize,
    /// Running stages that wait for another (they do not count against the limit).
    blocked: usize,
    limit: usize,
    /// Worker threads started (each opens its own engine, so only as many as needed).
    workers: usize,
    /// Who waits for which stage.
    parked: Vec<(usize, Sender<Option<Current>>)>,
    /// The lowest failed stage (`usize::MAX`: none): stages after it stop.
    stop: Arc<AtomicUsize>,
    /// The position in `order` of the stage being shown.
    head: usize,
    buffers: BTreeMap<usize, Vec<Ev>>,
    tail: Option<Tail>,
    consumed: BTreeSet<String>,
}

impl Scheduler<'_> {
    fn failed_at(&self) -> usize {
        self.stop.load(Ordering::SeqCst)
    }

    fn drive(
        &mut self,
        b: &mut Builder<'_>,
        rx: &Receiver<Msg>,
        jobs: &Sender<Job>,
        spawn: &mut dyn FnMut(),
    ) -> Result<()> {
        loop {
            self.start_ready(jobs, spawn)?;
            self.release_parked();
            if self.running == 0 {
                return Ok(());
            }
            let msg = rx
                .recv()
                .map_err(|_| anyhow!("the build threads ended early"))?;
            self.handle(b, msg)?;
        }
    }

    /// Starts every stage whose dependencies are done, up to the limit. After a failure,
    /// only stages before it start (a sequential build would have run them first).
    fn start_ready(&mut self, jobs: &Sender<Job>, spawn: &mut dyn FnMut()) -> Result<()> {
        for &s in &self.order {
            if self.running - self.blocked >= self.limit {
                break;
            }
            if self.status[&s] != Status::Pending || s > self.failed_at() {
                continue;
            }
            let deps = &self.deps[&s];
            if !deps.iter().all(|d| self.done.contains_key(d)) {
                continue;
            }
            let done = deps
                .iter()
                .filter_map(|d| self.done.get(d).map(|c| (*d, c.clone())))
                .collect();
            jobs.send(Job { stage: s, done })
                .map_err(|_| anyhow!("the build threads ended early"))?;
            self.status.insert(s, Status::Running);
            self.running += 1;
            // One worker per running stage: a stage waiting for another must not hold up
            // the worker that one needs.
            if self.running > self.workers {
                spawn();
                self.workers += 1;
            }
        }
        Ok(())
    }

    /// Answers those waiting for a stage that will never be built now.
    fn release_parked(&mut self) {
        let failed = self.failed_at();
        let mut keep = Vec::new();
        for (index, reply) in self.parked.drain(..) {
            if self.status[&index] == Status::Pending && index > failed {
                let _ = reply.send(None);
                self.blocked -= 1;
            } else {
                keep.push((index, reply));
            }
        }
        self.parked = keep;
    }

    fn shown(&self) -> Option<usize> {
        self.order.get(self.head).copied()
    }

    fn handle(&mut self, b: &mut Builder<'_>, msg: Msg) -> Result<()> {
        match msg {
            Msg::Event(stage, ev) => {
                if self.shown() == Some(stage) {
                    self.apply(&mut *b.progress, ev);
                } else {
                    self.buffers.entry(stage).or_default().push(ev);
                }
            }
            Msg::Output { stage, reply } => {
                let fd = if self.shown() == Some(stage) {
                    b.progress.run_output()
                } else {
                    super::capture().map(|(file, fd)| {
                        self.buffers
                            .entry(stage)
                            .or_default()
                            .push(Ev::Output(file));
                        fd
                    })
                };
                let _ = reply.send(fd);
            }
            Msg::Need { index, reply } => match self.status.get(&index) {
                Some(Status::Finished) | None => {
                    let _ = reply.send(self.done.get(&index).cloned());
                }
                Some(_) => {
                    self.parked.push((index, reply));
                    self.blocked += 1;
                }
            },
            Msg::Blob(blob) => b.lease_blob(&blob)?,
            Msg::Finished {
                stage,
                result,
                hits,
            } => {
                self.running -= 1;
                b.hits.extend(hits);
                self.status.insert(stage, Status::Finished);
                match *result {
                    Ok((current, used)) => {
                        self.consumed.extend(used);
                        self.done.insert(stage, current);
                    }
                    Err(e) => {
                        self.errors.insert(stage, e);
                        self.stop.fetch_min(stage, Ordering::SeqCst);
                    }
                }
                let mut keep = Vec::new();
                for (index, reply) in self.parked.drain(..) {
                    if index == stage {
                        let _ = reply.send(self.done.get(&stage).cloned());
                        self.blocked -= 1;
                    } else {
                        keep.push((index, reply));
                    }
                }
                self.parked = keep;
                self.advance(&mut *b.progress);
            }
        }
        Ok(())
    }

    /// Moves the shown stage on past those that finished, replaying what the next ones
    /// kept. A failed stage stays the last one shown.
    fn advance(&mut self, progress: &mut dyn Progress) {
        while let Some(s) = self.shown() {
            if self.status[&s] != Status::Finished || self.errors.contains_key(&s) {
                break;
            }
            self.head += 1;
            if let Some(next) = self.shown() {
                for ev in self.buffers.remove(&next).unwrap_or_default() {
                    self.apply(progress, ev);
                }
            }
        }
    }

    fn apply(&mut self, p: &mut dyn Progress, ev: Ev) {
        match ev {
            Ev::Step(n, total, text) => p.step(n, total, &text),
            Ev::Base(id) => p.base(id.as_ref()),
            Ev::Cached(id) => p.cached(&id),
            Ev::Running(c) => p.running(&c),
            Ev::Output(file) => {
                let mut tail = Tail {
                    file,
                    offset: 0,
                    out: None,
                };
                match p.run_output() {
                    Ok(fd) => {
                        let mut out = File::from(fd);
                        tail.offset = copy_at(&tail.file, 0, &mut out);
                        tail.out = Some(out);
                    }
                    Err(e) => log::warn!("showing a RUN's output: {e:#}"),
                }
                self.tail = Some(tail);
            }
            Ev::RunDone => {
                if let Some(t) = self.tail.take() {
                    if let Some(mut out) = t.out {
                        copy_at(&t.file, t.offset, &mut out);
                        // Closed before run_done, as the RUN itself closes its output.
                        drop(out);
                    }
                }
                p.run_done();
            }
            Ev::Done(id, elapsed) => p.done(&id, elapsed),
            Ev::Explain(why) => p.explain(&why),
            Ev::Note(text) => p.note(&text),
        }
    }
}

/// Copies `file` from `offset` to its current end into `out`; returns the end. Positional
/// reads, because the RUN may still write through a descriptor sharing the file offset.
fn copy_at(file: &File, mut offset: u64, out: &mut File) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read_at(&mut buf, offset) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = out.write_all(&buf[..n]) {
                    log::warn!("showing a RUN's output: {e}");
                    break;
                }
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("reading a RUN's captured output: {e}");
                break;
            }
        }
    }
    offset
}

impl Builder<'_> {
    /// Puts `blob` under this build's lease (taken on the first one).
    fn lease_blob(&mut self, blob: &Digest) -> Result<()> {
        if self.lease.is_none() {
            self.lease = Some(
                self.engine
                    .meta
                    .create_lease(Duration::from_secs(24 * 3600))?,
            );
        }
        if let Some(lease) = &self.lease {
            lease.add("blob", &blob.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_build::instructions::split_stages;
    use skiff_build::parser;

    fn plan(df: &str) -> (Vec<Stage>, BTreeMap<usize, BTreeSet<usize>>) {
        let df = parser::parse(df.as_bytes()).unwrap();
        let stages = split_stages(&df, &BTreeMap::new()).unwrap().stages;
        let needed = super::super::needed_stages(&stages, stages.len() - 1);
        let deps = dependencies(&stages, &needed);
        (stages, deps)
    }

    #[test]
    fn independent_stages_are_not_a_chain() {
        let (_, deps) = plan(
            "FROM a AS one\nRUN x\nFROM b AS two\nRUN y\nFROM c\nCOPY --from=one /x /x\nCOPY --from=two /y /y\n",
        );
        assert_eq!(deps[&2], BTreeSet::from([0, 1]));
        assert!(deps[&0].is_empty() && deps[&1].is_empty());
        assert!(!is_chain(&deps));
    }

    #[test]
    fn stages_built_on_each_other_are_a_chain() {
        let (_, deps) = plan("FROM a AS one\nFROM one AS two\nFROM c\nCOPY --from=two /x /x\n");
        assert!(is_chain(&deps));
        let (_, deps) = plan(
            "FROM a AS one\nFROM b AS two\nRUN --mount=type=bind,from=one,target=/m true\nFROM two\n",
        );
        assert_eq!(deps[&1], BTreeSet::from([0]));
        assert!(is_chain(&deps));
    }

    #[test]
    fn step_numbers_follow_file_order() {
        let (stages, deps) = plan(
            "FROM a AS one\nRUN x\nRUN y\nFROM b AS unused\nFROM b AS two\nRUN z\nFROM c\nCOPY --from=one /x /x\nCOPY --from=two /y /y\n",
        );
        let needed: BTreeSet<usize> = deps.keys().copied().collect();
        let first = first_steps(1, &stages, &needed);
        assert_eq!(first, BTreeMap::from([(0, 1), (2, 4), (3, 6)]));
    }
}
