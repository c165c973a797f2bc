//! One pipeline per stream: source → prepare → detect → decide, one thread per stage, joined by
//! drop-oldest channels, ending on the shared blocking alert bus.

pub mod channel;
pub mod stage;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::alert::Alert;
use crate::capture::supervisor::{RestartPolicy, SourceEvent, Supervised};
use crate::capture::{Source, Stamp};
use crate::metrics::{Counter, Histogram, Metrics};
pub use stage::{Decide, Detect, Prepare, StageError};

/// A message between stages: the payload, the stamp of the sensor data it came from, and when
/// it entered the queue (for the per-stage latency).
struct Msg<T> {
    stamp: Stamp,
    queued: Instant,
    value: T,
}

/// How a pipeline is sized.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Messages each drop-oldest queue holds before it drops the oldest.
    pub queue_depth: usize,
    pub restart: RestartPolicy,
    /// Wait for room instead of dropping: for recorded data (a scene file replayed), where a
    /// fast source must be slowed, not thinned.
    pub backpressure: bool,
    /// Keep evidence (pre-event buffer, keyframes or clips) in this folder.
    pub evidence: Option<(crate::evidence::EvidenceSettings, std::path::PathBuf)>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            queue_depth: 4,
            restart: RestartPolicy::default(),
            backpressure: false,
            evidence: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot start thread {name}: {err}")]
    Thread { name: String, err: std::io::Error },
    #[error("source of stream {stream} failed for good: {detail}")]
    SourceFailed { stream: String, detail: String },
    #[error(transparent)]
    Evidence(#[from] crate::evidence::EvidenceError),
    #[error("metrics of stream {stream}: {source}")]
    Metrics {
        stream: String,
        source: crate::metrics::MetricsError,
    },
}

/// Counters and histograms of one stream, registered once when the pipeline is built.
#[derive(Clone)]
struct StreamMetrics {
    frames_in: Counter,
    restarts: Counter,
    stage_errors: Counter,
    prepare_latency: Histogram,
    detect_latency: Histogram,
    decide_latency: Histogram,
    capture_to_alert: Histogram,
}

impl StreamMetrics {
    fn new(metrics: &Metrics, stream: &str) -> Result<Self, PipelineError> {
        let stage_errors = metrics
            .counter(
                "vigil_stage_errors_total",
                "Messages a stage could not process",
                &[("stream", stream)],
            )
            .map_err(|source| PipelineError::Metrics {
                stream: stream.into(),
                source,
            })?;
        Ok(Self {
            frames_in: metrics.frames_in(stream),
            restarts: metrics.source_restarts(stream),
            stage_errors,
            prepare_latency: metrics.stage_latency("prepare"),
            detect_latency: metrics.stage_latency("detect"),
            decide_latency: metrics.stage_latency("decide"),
            capture_to_alert: metrics.capture_to_alert(stream),
        })
    }
}

/// A running pipeline for one stream.
pub struct Pipeline {
    stream: String,
    source: Option<Supervised>,
    threads: Vec<JoinHandle<()>>,
    /// Joined after the stages: it writes what was still recording once both taps are gone.
    recorder: Option<crate::evidence::Recorder>,
    failure: Receiver<String>,
    stop: Arc<AtomicBool>,
}

fn spawn_named(
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|err| PipelineError::Thread { name, err })
}

/// Receives until the channel closes or the stop flag is set.
fn receive<T>(rx: &Receiver<T>, stop: &AtomicBool) -> Option<T> {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(message) => return Some(message),
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::SeqCst) => return None,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

fn since_capture(captured_at: SystemTime) -> f64 {
    SystemTime::now()
        .duration_since(captured_at)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Pipeline {
    /// Starts the stream's threads. Alerts go to `alerts`, which blocks when the sinks lag.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn<S, P, D, C>(
        stream: &str,
        source: S,
        mut prepare: P,
        mut detect: D,
        mut decide: C,
        alerts: Sender<Alert>,
        metrics: &Metrics,
        settings: PipelineSettings,
    ) -> Result<Self, PipelineError>
    where
        S: Source + 'static,
        P: Prepare,
        D: Detect<Input = P::Output>,
        C: Decide<Input = D::Output>,
    {
        let m = StreamMetrics::new(metrics, stream)?;
        let dropped = |stage: &str| metrics.frames_dropped(stream, stage);
        let stop = Arc::new(AtomicBool::new(false));
        let (failure_tx, failure) = crossbeam_channel::bounded(1);
        let depth = settings.queue_depth;
        // Recorded data waits for room (until stop); live data drops its oldest.
        let wait = settings.backpressure.then(|| stop.clone());
        let (samples_tx, samples_rx) = channel::queue(depth, dropped("prepare"), wait.clone());
        let (inputs_tx, inputs_rx) =
            channel::queue::<Msg<P::Output>>(depth, dropped("detect"), wait.clone());
        let (scores_tx, scores_rx) =
            channel::queue::<Msg<D::Output>>(depth, dropped("decide"), wait);
        let mut threads = Vec::new();
        let (recorder, mut sample_tap, alert_tap) = match &settings.evidence {
            Some((evidence, dir)) => {
                let (recorder, samples, alerts) =
                    crate::evidence::Recorder::start(stream, evidence, dir.clone())?;
                (Some(recorder), Some(samples), Some(alerts))
            }
            None => (None, None, None),
        };

        let sm = m.clone();
        let stage_stop = stop.clone();
        threads.push(spawn_named(format!("prepare-{stream}"), move || {
            let mut send = |stamp: Stamp, value: P::Output| {
                inputs_tx.send(Msg {
                    stamp,
                    queued: Instant::now(),
                    value,
                })
            };
            let mut last_stamp = None;
            while let Some(Msg {
                stamp: _,
                queued,
                value: sample,
            }) = receive(&samples_rx, &stage_stop)
            {
                let result = prepare.prepare(&sample, &mut send);
                last_stamp = Some(*sample.stamp());
                sm.prepare_latency.observe(queued.elapsed().as_secs_f64());
                if let Err(err) = result {
                    sm.stage_errors.inc();
                    log::warn!("{err}");
                }
            }
            // What the stage still holds goes on, as the detect stage's does.
            if let Some(last) = last_stamp {
                prepare.finish(last, &mut send);
            }
        })?);

        let sm = m.clone();
        let stage_stop = stop.clone();
        let stream_name = stream.to_string();
        threads.push(spawn_named(format!("detect-{stream}"), move || {
            let mut last_stamp = None;
            while let Some(Msg {
                stamp,
                queued,
                value,
            }) = receive(&inputs_rx, &stage_stop)
            {
                last_stamp = Some(stamp);
                match detect.detect(value) {
                    Ok(scores) => scores_tx.send(Msg {
                        stamp,
                        queued: Instant::now(),
                        value: scores,
                    }),
                    Err(err) => {
                        sm.stage_errors.inc();
                        log::warn!("stream {stream_name}: {err}");
                    }
                }
                sm.detect_latency.observe(queued.elapsed().as_secs_f64());
            }
            // What a detector still holds (a partial block) is scored, not dropped.
            match (detect.finish(), last_stamp) {
                (Ok(Some(scores)), Some(stamp)) => scores_tx.send(Msg {
                    stamp,
                    queued: Instant::now(),
                    value: scores,
                }),
                (Ok(_), _) => {}
                (Err(err), _) => {
                    sm.stage_errors.inc();
                    log::warn!("stream {stream_name}: {err}");
                }
            }
        })?);

        let sm = m.clone();
        let stage_stop = stop.clone();
        threads.push(spawn_named(format!("decide-{stream}"), move || {
            let mut send = |mut alert: Alert| {
                if let Some(tap) = &alert_tap {
                    tap.stamp_and_offer(&mut alert);
                }
                // Blocks while the sinks catch up: alerts are never dropped.
                if alerts.send(alert).is_err() {
                    log::error!("alert bus closed: an alert was lost");
                }
            };
            while let Some(Msg {
                stamp,
                queued,
                value,
            }) = receive(&scores_rx, &stage_stop)
            {
                decide.decide(stamp, value, &mut |alert| {
                    sm.capture_to_alert
                        .observe(since_capture(stamp.captured_at));
                    send(alert)
                });
                sm.decide_latency.observe(queued.elapsed().as_secs_f64());
            }
            decide.finish(&mut send);
        })?);

        let sm = m;
        let name = stream.to_string();
        let supervised = Supervised::spawn(stream, source, settings.restart, move |event| {
            match event {
                SourceEvent::Sample(sample) => {
                    sm.frames_in.inc();
                    if let Some(tap) = &mut sample_tap {
                        tap.offer(&sample);
                    }
                    let stamp = *sample.stamp();
                    samples_tx.send(Msg {
                        stamp,
                        queued: Instant::now(),
                        value: sample,
                    });
                }
                SourceEvent::Restarting {
                    reason,
                    backoff,
                    restarts,
                } => {
                    sm.restarts.inc();
                    log::warn!("stream {name}: restart {restarts} in {backoff:?} after: {reason}");
                }
                SourceEvent::Finished { error: None } => log::info!("stream {name}: source ended"),
                SourceEvent::Finished { error: Some(err) } => {
                    let _ = failure_tx.try_send(err.to_string());
                }
            }
            true
        })
        .map_err(|err| PipelineError::Thread {
            name: format!("capture-{stream}"),
            err,
        })?;

        Ok(Self {
            stream: stream.to_string(),
            source: Some(supervised),
            threads,
            recorder,
            failure,
            stop,
        })
    }

    /// True once the source ended and every stage drained.
    pub fn is_finished(&self) -> bool {
        self.source.as_ref().is_none_or(Supervised::is_finished)
            && self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Waits until the source ends and every stage has drained what it holds.
    pub fn wait(mut self) -> Result<(), PipelineError> {
        if let Some(source) = self.source.take() {
            source.join();
        }
        self.join_stages();
        match self.failure.try_recv() {
            Ok(detail) => Err(PipelineError::SourceFailed {
                stream: self.stream.clone(),
                detail,
            }),
            Err(_) => Ok(()),
        }
    }

    /// Stops capture now; queued messages are abandoned, open events are ended.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(source) = self.source.take() {
            source.stop();
        }
        self.join_stages();
    }

    fn join_stages(&mut self) {
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("stream {}: a stage thread panicked", self.stream);
            }
        }
        if let Some(recorder) = self.recorder.take() {
            recorder.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.source.take();
        self.join_stages();
    }
}
