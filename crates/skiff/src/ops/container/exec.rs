//! `skiff exec`: another process in a running container, through the runtime's `exec`.
//! The process is not waited for here: the caller (a child subreaper, so that the process
//! becomes its child once the runtime exits) waits for the returned pid.

use anyhow::Result;
use skiff_runtime::{ProcessIo, ProcessSpec, Runtime};

use super::create::replace_or_append;
use super::reconcile;
use super::store::{Container, ContainerStore, Status};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// `-e`, already `KEY=value`.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub privileged: bool,
    pub tty: bool,
}

/// Starts `opts.command` in `c`; returns its pid on the host.
pub fn exec(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    opts: &ExecOptions,
    io: ProcessIo,
) -> Result<i32> {
    let state = reconcile::state(engine.root(), store, c)?;
    if state.status == Status::Paused {
        return Err(OpError::conflict(format!(
            "Container {} is paused, unpause the container before exec",
            c.id
        ))
        .into());
    }
    if state.status != Status::Running {
        return Err(OpError::conflict(format!("Container {} is not running", c.id)).into());
    }
    if opts.command.is_empty() {
        return Err(OpError::invalid("No exec command specified").into());
    }
    let user_arg = opts.user.clone().unwrap_or_else(|| c.config.user.clone());
    let user = super::users::resolve(&c.rootfs, &user_arg)?;
    let mut env = super::spec::environment(c, opts.tty, &user.home);
    for e in &opts.env {
        replace_or_append(&mut env, e);
    }
    let mut process = ProcessSpec::new(opts.command.clone());
    process.env = env;
    process.cwd = match &opts.workdir {
        Some(w) => w.clone(),
        None if !c.config.working_dir.is_empty() => c.config.working_dir.clone(),
        None => "/".to_owned(),
    };
    process.user = skiff_runtime::spec::UserSpec {
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        umask: None,
    };
    process.terminal = opts.tty;
    let dir = store.dir(&c.id);
    let config = skiff_runtime::bundle::read_config(&dir)?;
    let host = super::runtime::host()?;
    let (process, _warnings) =
        skiff_runtime::spec::exec_process(&config, &process, opts.privileged, &host)
            .map_err(|e| OpError::invalid(e.to_string()))?;
    let path = dir.join(format!(
        "exec-{}-{}.json",
        std::process::id(),
        super::store::new_id()?.get(..8).unwrap_or("0")
    ));
    let bytes = skiff_runtime::bundle::process_json(&process)?;
    super::store::write_file(&path, &bytes)?;
    let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
    let result = rt.exec(&c.id, &path, io);
    let _ = std::fs::remove_file(&path);
    Ok(result?)
}
