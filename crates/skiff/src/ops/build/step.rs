//! One step of a stage: dispatch the instruction, look its key up in the cache, else do the
//! work (a RUN in a container, files copied, a directory made) on a fresh snapshot and
//! record the result.

use super::*;

impl Builder<'_> {
    /// One instruction: dispatch, then the cache or the work, then the intermediate image.
    pub(super) fn step_one(
        &mut self,
        state: &mut StageState,
        current: Current,
        ins: &Instruction,
    ) -> Result<Current> {
        let started = Instant::now();
        let effect = state
            .dispatch(ins)
            .map_err(|e| OpError::invalid(e.to_string()))?;
        // What the key needs beyond the instruction line.
        let mut build_args: Vec<String> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        let mut execution: Vec<String> = Vec::new();
        let instruction;
        let mut copy_plan = None;
        match &effect {
            Effect::Meta { created_by } | Effect::Workdir { created_by, .. } => {
                instruction = created_by.clone();
            }
            Effect::Run(run) => {
                instruction = run.created_by.clone();
                build_args = run.build_args.clone();
                execution = run.env.clone();
                execution.push(format!("user={}", run.user));
                execution.push(format!("workdir={}", run.workdir));
                execution.push(format!("network={}", run.network));
                execution.extend(self.mount_key(run)?);
            }
            Effect::Copy(copy) => {
                let (digest, from_key) = self.hash_sources(copy, state)?;
                instruction = copy.created_by(&digest.desc);
                sources.push(digest.hash.clone());
                if let Some(k) = from_key {
                    sources.push(format!("--from={k}"));
                }
                sources.extend(digest.files.iter().cloned());
                execution.push(format!("chown={}", copy.chown.clone().unwrap_or_default()));
                execution.push(format!(
                    "chmod={}",
                    copy.chmod.map(|m| format!("{m:o}")).unwrap_or_default()
                ));
                copy_plan = Some(digest);
            }
        }
        let input = KeyInput {
            parent: &current.key,
            instruction: &instruction,
            build_args: &build_args,
            sources: &sources,
            execution: &execution,
            source_date_epoch: self.opts.source_date_epoch,
        };
        let key = input.key();
        if !self.opts.no_cache {
            if let Some(entry) = self.cache.get(&key)? {
                let usable = entry
                    .layers
                    .iter()
                    .all(|l| self.engine.content.exists(&l.blob));
                if usable {
                    // Recorded with an hour's precision, so that a cached build writes
                    // nothing to the cache database (no transaction, no fsync) in the common
                    // case; only its build record (`history.rs`) is written.
                    if skiff_image::store::unix_now() - entry.last_used > 3600 {
                        self.hits.push(key.clone());
                    }
                    let config: ImageConfig = serde_json::from_slice(&entry.config)?;
                    // The next steps must see the cached config (timestamps included).
                    state.config = config.clone();
                    let id = Digest::of_bytes(&entry.config);
                    self.progress.cached(&id);
                    self.missed = false;
                    return Ok(Current {
                        config,
                        layers: entry.layers,
                        key,
                    });
                }
            }
        }
        if let Some(next) = self.step_from_cache_images(state, &current, &input, &key)? {
            return Ok(next);
        }
        if self.opts.explain_cache {
            let why = match self.cache.closest(&current.key, &instruction)? {
                None if self.missed => "the previous step changed".to_owned(),
                None => "no earlier build of this step".to_owned(),
                Some(old) => {
                    let old_in = KeyInput {
                        parent: &old.parent,
                        instruction: &old.instruction,
                        build_args: &old.build_args,
                        sources: &old.sources,
                        execution: &old.execution,
                        source_date_epoch: old.source_date_epoch,
                    };
                    if self.opts.no_cache {
                        "--no-cache".to_owned()
                    } else {
                        explain(&old_in, &input)
                            .unwrap_or_else(|| "its layers were removed".to_owned())
                    }
                }
            };
            self.progress.explain(&why);
        }
        self.missed = true;
        let stored_input = cache_db::StoredInput {
            parent: current.key.clone(),
            instruction: instruction.clone(),
            build_args: build_args.clone(),
            sources: sources.clone(),
            execution: execution.clone(),
            source_date_epoch: self.opts.source_date_epoch,
        };

        let mut next = current.clone();
        next.config = state.config.clone();
        let created = self.created();
        let (empty_layer, own_size) = match &effect {
            Effect::Meta { .. } => {
                self.progress.running(&random_hex(12));
                (true, 0)
            }
            Effect::Run(run) => {
                let layer = self.run_step(&current, run)?;
                let size = layer.size;
                next.layers.push(layer);
                (false, size)
            }
            Effect::Copy(copy) => {
                let mut layer = None;
                if let Some(digest) = copy_plan.as_ref().filter(|_| !self.opts.no_cache) {
                    match self.incremental_copy(&current, copy, &stored_input, digest) {
                        Ok(l) => layer = l,
                        // Only a faster way to the same result: the full copy decides.
                        Err(e) => log::debug!("incremental COPY not used: {e:#}"),
                    }
                }
                let layer = match layer {
                    Some(l) => l,
                    None => self.copy_step(&current, copy, state)?,
                };
                let size = layer.size;
                next.layers.push(layer);
                (false, size)
            }
            Effect::Workdir { path, .. } => {
                self.progress.running(&random_hex(12));
                let layer = self.with_tree(&current, |_, tree| {
                    let dir = tree.join(path.trim_start_matches('/'));
                    let resolved = skiff_build::context::resolve_in_root(
                        tree,
                        path.trim_start_matches('/'),
                        true,
                    )
                    .unwrap_or(dir);
                    fs::create_dir_all(&resolved)
                        .with_context(|| format!("creating WORKDIR {path}"))?;
                    Ok(())
                })?;
                let size = layer.size;
                next.layers.push(layer);
                (false, size)
            }
        };
        next.config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(instruction.clone()),
            author: next.config.author.clone(),
            comment: None,
            empty_layer,
        });
        next.config.created = Some(created);
        next.config.rootfs =
            RootFs::layers(next.layers.iter().map(|l| l.diff_id.clone()).collect());
        state.config = next.config.clone();
        let bytes = config_bytes(&next.config);
        self.cache
            .put(&key, &stored_input, &bytes, &next.layers, own_size)?;
        if let (Some(digest), Effect::Copy(copy)) = (&copy_plan, &effect) {
            if copy.from.is_none() && !copy.remote && copy.inline.is_empty() {
                // What an incremental COPY of a later build compares its sources with.
                self.cache.put_mtimes(&key, &digest.mtimes)?;
            }
        }
        next.key = key;
        self.progress
            .done(&Digest::of_bytes(&bytes), started.elapsed());
        Ok(next)
    }

    /// Prepares a tree on `current`, lets `work` change it, and commits it as a layer.
    pub(super) fn with_tree(
        &mut self,
        current: &Current,
        work: impl FnOnce(&mut Self, &Path) -> Result<()>,
    ) -> Result<LayerRecord> {
        let t0 = Instant::now();
        if !self.swept {
            self.swept = true;
            let stale = layer::stale_keys(self.engine)?;
            if !stale.is_empty() {
                // Their containers go first (the executor removes those of dead builds).
                if self.executor.is_none() {
                    self.executor = Some(runner::RuntimeExecutor::new(self.engine.root())?);
                }
                layer::remove_stale(self.engine, &stale)?;
            }
        }
        let parent = layer::ensure_chain(self.engine, &current.layers)?;
        let tree = layer::WorkTree::new(self.engine, parent.as_deref())?;
        let t1 = Instant::now();
        work(self, &tree.rootfs)?;
        let t2 = Instant::now();
        let below: Vec<Digest> = current.layers.iter().map(|l| l.diff_id.clone()).collect();
        let record = tree.commit(&below, self.opts.source_date_epoch)?;
        log::debug!(
            "step tree: prepare {:?}, work {:?}, layer {:?} ({} bytes)",
            t1 - t0,
            t2 - t1,
            t2.elapsed(),
            record.blob_size
        );
        self.lease_layer(&record)?;
        Ok(record)
    }

    /// Protects a blob this build wrote from GC until the image refers to it.
    pub(super) fn lease_layer(&mut self, record: &LayerRecord) -> Result<()> {
        if self.lease.is_none() {
            self.lease = Some(
                self.engine
                    .meta
                    .create_lease(Duration::from_secs(24 * 3600))?,
            );
        }
        if let Some(lease) = &self.lease {
            lease.add("blob", &record.blob.to_string())?;
        }
        if let Some(link) = &self.link {
            link.leased(&record.blob);
        }
        Ok(())
    }

    pub(super) fn run_step(&mut self, current: &Current, run: &RunStep) -> Result<LayerRecord> {
        if self.executor.is_none() {
            self.executor = Some(runner::RuntimeExecutor::new(self.engine.root())?);
        }
        let network = if run.network == "default" {
            self.opts.network.clone()
        } else {
            run.network.clone()
        };
        let sources = self.mount_sources(run)?;
        self.with_tree(current, |b, rootfs| {
            let prepared = mounts::prepare(b.engine, b.opts, &b.ignore, &run.mounts, &sources)?;
            let mut env = run.env.clone();
            env.extend(prepared.env.iter().cloned());
            let name = random_hex(12);
            b.progress.running(&name);
            let output = b.progress.run_output()?;
            let Some(exec) = b.executor.as_mut() else {
                anyhow::bail!("no executor");
            };
            let result = exec.run(RunRequest {
                name: &name,
                rootfs,
                args: &run.args,
                env: &env,
                user: &run.user,
                workdir: &run.workdir,
                network: &network,
                output,
                mounts: &prepared.mounts,
            });
            drop(prepared);
            b.progress.run_done();
            let code = result.map_err(|e| step_failed(e.0))?;
            if code != 0 {
                return Err(step_failed(format!(
                    "The command '{}' returned a non-zero code: {code}",
                    run.display
                )));
            }
            Ok(())
        })
    }
}
