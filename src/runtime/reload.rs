//! Hot reload: a changed profile, manifest or model file is picked up while vigil runs.
//!
//! [`run`] polls the profile, the manifest and the files of every model in use once a second
//! (size and modification time: this works on every file system and with editors that
//! replace files by renaming), and reloads at once on SIGHUP.
//!
//! [`Runtime::reload`] builds everything the new profile needs (models loaded and checked,
//! sources built, sink settings and their files read) before it touches what runs, so a bad
//! profile or model is refused with its error and the old one goes on. Then:
//! - a stream whose table, model entry and model files are unchanged keeps running untouched;
//!   its open events stay open;
//! - a changed stream is stopped (its open events end, as on SIGTERM) and started anew; an
//!   added one is started and a removed one stopped;
//! - a change anywhere else (box, alerts, metrics) restarts everything: every stream stops, the
//!   alert bus drains and closes its journal with every acknowledgement written, and a new bus
//!   reopens the journal, so each sink gets exactly what it had not acknowledged.
//!
//! Alerts are never lost or duplicated by a reload: they pass through the one journal, whose
//! ids keep counting, and a restarted stream numbers its events from the clock, as after a
//! restart of the process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::{
    Plans, RunningStream, Runtime, RuntimeError, build_stream, check_sinks, close_bus, manifest_of,
    manifest_path, serve_metrics, spawn_stream, start_bus,
};
use crate::detector::{Manifest, ModelSpec};
use crate::profile::{Profile, StreamSettings};

/// How often the watched files are looked at.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// What a stream was built from: equal identities need no restart.
#[derive(Debug, PartialEq)]
pub(super) struct StreamIdentity {
    table: Option<toml::Value>,
    model: Option<ModelSpec>,
    files: Vec<FileStamp>,
}

impl StreamIdentity {
    pub(super) fn of(stream: &StreamSettings, profile: &Profile, manifest: &Manifest) -> Self {
        let model = manifest.model(&stream.model).ok().cloned();
        let files = model
            .iter()
            .flat_map(|m| &m.files)
            .map(|file| FileStamp::of(&manifest.path_of(file)))
            .collect();
        Self {
            table: profile.tables.streams.get(&stream.name).cloned(),
            model,
            files,
        }
    }
}

/// A file's size and modification time, or its absence.
#[derive(Debug, Clone, PartialEq)]
struct FileStamp {
    path: PathBuf,
    seen: Option<(u64, SystemTime)>,
}

impl FileStamp {
    fn of(path: &Path) -> Self {
        let seen = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        Self {
            path: path.into(),
            seen,
        }
    }
}

/// What a reload did, stream by stream.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReloadReport {
    /// Box, alerts or metrics changed: everything was restarted.
    pub restarted_all: bool,
    pub kept: Vec<String>,
    pub restarted: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.restarted_all {
            write!(f, "box, alerts or metrics changed: restarted everything; ")?;
        }
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        write!(
            f,
            "kept {}; restarted {}; started {}; stopped {}",
            list(&self.kept),
            list(&self.restarted),
            list(&self.started),
            list(&self.stopped)
        )
    }
}

impl Runtime {
    /// Switches to `new`, changing only what differs. An error before anything changed leaves
    /// the old profile running ([`Runtime::is_broken`] stays false); an error afterwards (the
    /// journal or the metrics port cannot be reopened) leaves the runtime broken, and the
    /// caller must stop.
    pub fn reload(&mut self, new: Profile) -> Result<ReloadReport, RuntimeError> {
        let manifest = manifest_of(&new)?;
        let restart_all = new.tables.shared != self.profile.tables.shared;
        let mut report = ReloadReport {
            restarted_all: restart_all,
            ..Default::default()
        };
        // Everything that can fail is built first.
        let mut plans = Plans::new();
        let mut to_start = Vec::new();
        for stream in &new.streams {
            let identity = StreamIdentity::of(stream, &new, &manifest);
            let running = self.streams.iter().find(|r| r.name == stream.name);
            match running {
                Some(r) if !restart_all && r.identity == identity => {
                    report.kept.push(stream.name.clone());
                    continue;
                }
                Some(_) => report.restarted.push(stream.name.clone()),
                None => report.started.push(stream.name.clone()),
            }
            let parts = build_stream(stream, &new, &manifest, &mut plans)?;
            to_start.push((stream, identity, parts));
        }
        if restart_all {
            check_sinks(&new)?;
        }

        // From here on the running profile changes.
        let (kept, to_stop): (Vec<RunningStream>, Vec<RunningStream>) =
            std::mem::take(&mut self.streams)
                .into_iter()
                .partition(|r| report.kept.contains(&r.name));
        for running in to_stop {
            if !new.streams.iter().any(|s| s.name == running.name) {
                report.stopped.push(running.name.clone());
            }
            running.pipeline.stop();
        }
        self.streams = kept;
        if restart_all {
            close_bus(self.bus.take())?;
            if new.metrics != self.profile.metrics {
                self.server = None;
                self.server = serve_metrics(&new, &self.metrics)?;
            }
            self.bus = Some(start_bus(&new, &self.metrics)?);
        }
        let Some(bus) = &self.bus else {
            return Err(RuntimeError::Broken);
        };
        for (stream, identity, parts) in to_start {
            self.streams.push(RunningStream {
                name: stream.name.clone(),
                identity,
                pipeline: spawn_stream(stream, parts, &new, bus, &self.metrics)?,
            });
        }
        self.profile = new;
        Ok(report)
    }

    /// A reload failed after it had begun changing things; nothing is delivering alerts.
    pub fn is_broken(&self) -> bool {
        self.bus.is_none()
    }

    /// The files whose change triggers a reload: the profile, the manifest, and the files of
    /// the models the streams run.
    fn watched_files(&self, profile_path: &Path) -> Vec<FileStamp> {
        let models = self
            .streams
            .iter()
            .flat_map(|s| s.identity.files.iter().map(|f| f.path.clone()));
        [profile_path.to_path_buf(), manifest_path(&self.profile)]
            .into_iter()
            .chain(models)
            .map(|path| FileStamp::of(&path))
            .collect()
    }
}

/// Loads a profile file and runs it until its sources end or `stop` is set, reloading it when
/// it, the manifest or a model file changes, or when `reload` is set (SIGHUP).
pub fn run(
    path: &Path,
    stop: &AtomicBool,
    reload: &AtomicBool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let profile = Profile::load(path)?;
    let mut runtime = Runtime::start(&profile)?;
    let mut watched = runtime.watched_files(path);
    let mut polled_at = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(runtime.stop()?);
        }
        if runtime.is_finished() {
            return Ok(runtime.wait()?);
        }
        let signalled = reload.swap(false, Ordering::SeqCst);
        let changed = polled_at.elapsed() >= POLL_EVERY && {
            polled_at = Instant::now();
            runtime.watched_files(path) != watched
        };
        if signalled || changed {
            let why = if signalled {
                "SIGHUP"
            } else {
                "a file changed"
            };
            let outcome = Profile::load(path)
                .map_err(|err| err.to_string())
                .and_then(|new| runtime.reload(new).map_err(|err| err.to_string()));
            match outcome {
                Ok(report) => log::info!("reloaded {} ({why}): {report}", path.display()),
                Err(err) if runtime.is_broken() => {
                    return Err(format!("reload of {} failed midway: {err}", path.display()).into());
                }
                Err(err) => log::error!(
                    "reload of {} refused ({why}): {err}; the running profile stays",
                    path.display()
                ),
            }
            // Also after a refusal: the same bad file is not tried again until it changes.
            watched = runtime.watched_files(path);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
