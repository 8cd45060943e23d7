//! HEALTHCHECK probes, run by the monitor through the runtime's `exec`, with docker's
//! defaults (every 30 s, 30 s timeout, unhealthy after 3 failures, none counted during the
//! start period) and docker's `State.Health` record (status, failing streak, last 5 results).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_runtime::{Io, OciCli, ProcessIo, Runtime, Stdio};

use crate::ops::container::model::{Health, HealthLog};
use crate::ops::container::store::{now_rfc3339, update_state_in, Container};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// docker keeps this many results, and this much of each one's output.
const KEEP: usize = 5;
const MAX_OUTPUT: usize = 4096;

struct Probe {
    pid: i32,
    began: Instant,
    start: String,
}

pub struct HealthChecker {
    args: Vec<String>,
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    retries: u32,
    started: Instant,
    next: Instant,
    probe: Option<Probe>,
    dir: PathBuf,
}

fn duration(nanos: Option<i64>, default: Duration) -> Duration {
    match nanos {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

impl HealthChecker {
    /// The checker for `c`, or `None` when it has no healthcheck (or `NONE`).
    pub fn new(c: &Container, dir: &Path) -> Option<HealthChecker> {
        let h = c.config.healthcheck.as_ref()?;
        let test = h.test.as_ref()?;
        let args = match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            Some("CMD-SHELL") => {
                vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]
            }
            _ => return None,
        };
        if args.is_empty() {
            return None;
        }
        let interval = duration(h.interval, DEFAULT_INTERVAL);
        let now = Instant::now();
        Some(HealthChecker {
            args,
            interval,
            timeout: duration(h.timeout, DEFAULT_TIMEOUT),
            start_period: duration(h.start_period, Duration::ZERO),
            retries: h
                .retries
                .filter(|r| *r > 0)
                .map_or(DEFAULT_RETRIES, |r| r as u32),
            started: now,
            next: now + interval,
            probe: None,
            dir: dir.to_owned(),
        })
    }

    /// The health record a fresh start begins with.
    pub fn initial() -> Health {
        Health {
            status: "starting".to_owned(),
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    /// When the monitor must wake up for us next.
    pub fn next_wakeup(&self) -> Instant {
        match &self.probe {
            // Its exit wakes nobody (it is not the process the monitor has a pidfd for):
            // look every 20 ms while it runs.
            Some(p) => (Instant::now() + Duration::from_millis(20)).min(p.began + self.timeout),
            None => self.next,
        }
    }

    /// Starts a probe when one is due; kills one that has run past its timeout.
    pub fn tick(&mut self, rt: &OciCli, id: &str) {
        let now = Instant::now();
        if let Some(p) = &self.probe {
            if now >= p.began + self.timeout {
                if let Some(pid) = rustix::process::Pid::from_raw(p.pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                let start = p.start.clone();
                self.probe = None;
                self.record(
                    start,
                    -1,
                    format!("Health check exceeded timeout ({:?})", self.timeout),
                );
                self.next = now + self.interval;
            }
            return;
        }
        if now < self.next {
            return;
        }
        match self.spawn(rt, id) {
            Ok(pid) => {
                self.probe = Some(Probe {
                    pid,
                    began: now,
                    start: now_rfc3339(),
                })
            }
            Err(e) => {
                self.record(now_rfc3339(), -1, e.to_string());
                self.next = now + self.interval;
            }
        }
    }

    fn output_path(&self) -> PathBuf {
        self.dir.join("health.out")
    }

    fn spawn(&self, rt: &OciCli, id: &str) -> anyhow::Result<i32> {
        let spec = skiff_runtime::bundle::read_config(&self.dir)?;
        let mut process = spec
            .process()
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the container's config.json has no process"))?;
        process.set_args(Some(self.args.clone()));
        process.set_terminal(Some(false));
        process.set_console_size(None);
        let path = self.dir.join("health.json");
        crate::ops::container::store::write_file(
            &path,
            &skiff_runtime::bundle::process_json(&process)?,
        )?;
        let out = File::create(self.output_path())?;
        let err = out.try_clone()?;
        let io = ProcessIo {
            stdio: Stdio {
                stdin: Io::Null,
                stdout: Io::Fd(out.into()),
                stderr: Io::Fd(err.into()),
            },
            ..ProcessIo::default()
        };
        Ok(rt.exec(id, &path, io)?)
    }

    /// Takes the exit of `pid` if it is our probe; true then.
    pub fn on_exit(&mut self, pid: i32, code: i32) -> bool {
        match &self.probe {
            Some(p) if p.pid == pid => {
                let start = p.start.clone();
                self.probe = None;
                let mut output = Vec::new();
                if let Ok(f) = File::open(self.output_path()) {
                    let _ = f.take(MAX_OUTPUT as u64).read_to_end(&mut output);
                }
                self.record(start, code, String::from_utf8_lossy(&output).into_owned());
                self.next = Instant::now() + self.interval;
                true
            }
            _ => false,
        }
    }

    fn record(&self, start: String, code: i32, output: String) {
        let in_start_period = self.started.elapsed() < self.start_period;
        let retries = self.retries;
        let entry = HealthLog {
            start,
            end: now_rfc3339(),
            exit_code: code,
            output,
        };
        let _ = update_state_in(&self.dir, |s| {
            let h = s.health.get_or_insert_with(HealthChecker::initial);
            h.log.push(entry);
            if h.log.len() > KEEP {
                let extra = h.log.len() - KEEP;
                h.log.drain(..extra);
            }
            if code == 0 {
                h.status = "healthy".to_owned();
                h.failing_streak = 0;
            } else if !(in_start_period && h.status == "starting") {
                h.failing_streak += 1;
                if h.failing_streak >= retries {
                    h.status = "unhealthy".to_owned();
                }
            }
            Ok(())
        });
    }
}
