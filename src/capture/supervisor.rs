//! Keeps a source running: restarts it with exponential backoff after an error, a stall or
//! (for live sources) the end of the stream, and counts each restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{CaptureError, Sample, Source};

/// How a source is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// Restart after the end of the stream (a camera or RTSP feed); off for files played once.
    #[serde(default)]
    pub restart_on_eos: bool,
    #[serde(default = "default_initial_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_ms")]
    pub max_backoff_ms: u64,
    /// Gives up after this many restarts in a row without a sample (None: never).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

fn default_initial_ms() -> u64 {
    100
}

fn default_max_ms() -> u64 {
    5_000
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            restart_on_eos: false,
            initial_backoff_ms: default_initial_ms(),
            max_backoff_ms: default_max_ms(),
            max_attempts: None,
        }
    }
}

/// What the supervisor tells its owner, besides the samples.
#[derive(Debug)]
pub enum SourceEvent {
    Sample(Sample),
    /// The source failed or ended and will be started again after `backoff`.
    Restarting {
        reason: String,
        backoff: Duration,
        restarts: u64,
    },
    /// The source ended for good (end of a file, or too many failed restarts).
    Finished {
        error: Option<CaptureError>,
    },
}

/// A source running on its own thread.
pub struct Supervised {
    stop: Arc<AtomicBool>,
    interrupter: Option<Arc<AtomicBool>>,
    thread: Option<JoinHandle<()>>,
}

impl Supervised {
    /// Runs `source` on a new thread named `name`, handing every event to `emit`. `emit`
    /// returns false when nobody listens any more, which stops the source.
    pub fn spawn<S, F>(
        name: &str,
        mut source: S,
        policy: RestartPolicy,
        mut emit: F,
    ) -> std::io::Result<Self>
    where
        S: Source + 'static,
        F: FnMut(SourceEvent) -> bool + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let interrupter = source.interrupter();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{name}"))
            .spawn(move || run(&mut source, policy, &thread_stop, &mut emit))?;
        Ok(Self {
            stop,
            interrupter,
            thread: Some(thread),
        })
    }

    /// Asks the source to stop and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// True once the source's thread has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the source to end by itself (end of a file, or failing for good).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("capture thread panicked");
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(flag) = &self.interrupter {
            flag.store(true, Ordering::SeqCst);
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("capture thread panicked");
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run<S: Source, F: FnMut(SourceEvent) -> bool>(
    source: &mut S,
    policy: RestartPolicy,
    stop: &AtomicBool,
    emit: &mut F,
) {
    let initial = Duration::from_millis(policy.initial_backoff_ms.max(1));
    let max = Duration::from_millis(policy.max_backoff_ms.max(policy.initial_backoff_ms));
    let mut backoff = initial;
    let mut failures_in_a_row = 0u32;
    let mut restarts = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let reason = match source.start() {
            Err(err) => err,
            Ok(()) => {
                log::info!("started {}", source.describe());
                let ended = loop {
                    if stop.load(Ordering::SeqCst) {
                        source.stop();
                        return;
                    }
                    match source.next() {
                        Ok(Some(sample)) => {
                            // A source that delivers has recovered: the next failure starts
                            // the backoff from the beginning again.
                            failures_in_a_row = 0;
                            backoff = initial;
                            if !emit(SourceEvent::Sample(sample)) {
                                source.stop();
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(err) => break Some(err),
                    }
                };
                source.stop();
                match ended {
                    None if stop.load(Ordering::SeqCst) => return,
                    None if !policy.restart_on_eos => {
                        emit(SourceEvent::Finished { error: None });
                        return;
                    }
                    None => CaptureError::EndOfStream {
                        source_name: source.describe(),
                    },
                    Some(err) => err,
                }
            }
        };
        failures_in_a_row += 1;
        if policy
            .max_attempts
            .is_some_and(|max| failures_in_a_row > max)
        {
            emit(SourceEvent::Finished {
                error: Some(reason),
            });
            return;
        }
        restarts += 1;
        let keep_going = emit(SourceEvent::Restarting {
            reason: reason.to_string(),
            backoff,
            restarts,
        });
        if !keep_going || !sleep_unless_stopped(backoff, stop) {
            return;
        }
        backoff = (backoff * 2).min(max);
    }
}

/// Sleeps in small slices so that a stop request is honoured quickly; false if stopped.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(total));
    }
    !stop.load(Ordering::SeqCst)
}
