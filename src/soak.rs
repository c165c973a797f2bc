//! Load and soak: several camera streams fed faster than their model can take, for a long
//! time, through the whole runtime (GStreamer decode, drop-oldest queues, the model the caller
//! names (`vigil soak` uses the shipped PatchCore brick model), the decide stage, the journal
//! and a file sink). What must hold:
//!
//! - memory stays flat: resident memory at the end within a margin of what it was after the
//!   warm-up;
//! - latency stays bounded: capture-to-alert latency in the last window no worse than a bound;
//! - dropped frames are counted: the per-stage drop counters account for every frame that
//!   came in and was not scored;
//! - no alert is lost: the sink received every alert the bus journaled, ids consecutive.
//!
//! `vigil soak` runs it; `scripts/soak.sh` runs the one-hour release check.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::alert::Phase;
use crate::capture::{Sample, Stamp, VideoFrame};
use crate::metrics::Metrics;
use crate::profile::Profile;
use crate::runtime::{InlineDetector, Runtime};

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub duration: Duration,
    pub streams: usize,
    /// Frames offered per stream, as a multiple of what the model takes on this machine.
    pub overload: f64,
    /// Folder of `frame-NNN.png` that each stream plays in a loop.
    pub frames: PathBuf,
    pub frame_size: (usize, usize),
    pub model: String,
    /// Working folder: profile, journal, alerts.
    pub work: PathBuf,
}

/// Resident memory over the run, sampled every few seconds.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub model_fps: f64,
    pub offered_fps: f64,
    pub seconds: f64,
    pub frames_in: u64,
    pub frames_dropped: u64,
    pub frames_scored: u64,
    pub alerts_counted: u64,
    pub alerts_delivered: u64,
    pub ids_consecutive: bool,
    pub events: usize,
    /// (seconds since start, resident MiB).
    pub rss_mib: Vec<(f64, f64)>,
    /// Capture-to-alert latency (s) of the alerts of the first and last quarter of the run.
    pub latency_first: Latency,
    pub latency_last: Latency,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// After this much of the run, memory counts as warmed up (plans built, queues full).
const WARM_UP_FRACTION: f64 = 0.1;
/// What "flat" allows between the warmed-up and the final resident memory.
pub const RSS_GROWTH_LIMIT: f64 = 0.10;
/// What "bounded" allows for the p99 capture-to-alert latency at the end of the run.
pub const LATENCY_P99_LIMIT_S: f64 = 2.0;

impl SoakReport {
    /// The failed checks, in words; empty when everything held.
    pub fn failures(&self) -> Vec<String> {
        let mut failed = Vec::new();
        if self.alerts_delivered != self.alerts_counted || !self.ids_consecutive {
            failed.push(format!(
                "alerts lost or repeated: {} journaled, {} delivered, ids consecutive: {}",
                self.alerts_counted, self.alerts_delivered, self.ids_consecutive
            ));
        }
        if self.alerts_delivered == 0 {
            failed.push("no alert at all: the load did not exercise the alert path".into());
        }
        if self.frames_dropped == 0 {
            failed.push("nothing dropped: the streams were not overloaded".into());
        }
        if let Some(growth) = self.rss_growth()
            && growth > RSS_GROWTH_LIMIT
        {
            failed.push(format!(
                "resident memory grew {:.1} % after the warm-up (limit {:.0} %)",
                growth * 100.0,
                RSS_GROWTH_LIMIT * 100.0
            ));
        }
        if self.latency_last.p99 > LATENCY_P99_LIMIT_S {
            failed.push(format!(
                "p99 capture-to-alert latency {:.2} s at the end (limit {LATENCY_P99_LIMIT_S} s)",
                self.latency_last.p99
            ));
        }
        failed
    }

    /// Resident memory (MiB) at the first sample after the warm-up.
    fn warm_rss(&self) -> Option<f64> {
        self.rss_mib
            .iter()
            .find(|(t, _)| *t >= self.seconds * WARM_UP_FRACTION)
            .map(|s| s.1)
    }

    /// Growth of resident memory from the end of the warm-up to the end of the run.
    pub fn rss_growth(&self) -> Option<f64> {
        Some(self.rss_mib.last()?.1 / self.warm_rss()? - 1.0)
    }

    pub fn render(&self) -> String {
        let peak_rss = self.rss_mib.iter().map(|s| s.1).fold(0.0, f64::max);
        format!(
            "model takes {:.1} frames/s per stream here; offered {:.1} frames/s per stream\n\
             {:.0} s: frames in {}, scored {}, dropped {} (counted per stage)\n\
             alerts: {} journaled, {} delivered, ids consecutive: {}, {} events\n\
             resident memory: {:.0} MiB after warm-up, {:.0} MiB at the end ({:+.1} %), peak {:.0} MiB\n\
             capture-to-alert latency: first quarter p50 {:.2} s p99 {:.2} s max {:.2} s; \
             last quarter p50 {:.2} s p99 {:.2} s max {:.2} s",
            self.model_fps,
            self.offered_fps,
            self.seconds,
            self.frames_in,
            self.frames_scored,
            self.frames_dropped,
            self.alerts_counted,
            self.alerts_delivered,
            self.ids_consecutive,
            self.events,
            self.warm_rss().unwrap_or(0.0),
            self.rss_mib.last().map_or(0.0, |s| s.1),
            self.rss_growth().unwrap_or(0.0) * 100.0,
            peak_rss,
            self.latency_first.p50,
            self.latency_first.p99,
            self.latency_first.max,
            self.latency_last.p50,
            self.latency_last.p99,
            self.latency_last.max,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("soak: {0}")]
    Setup(String),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
}

fn profile_text(config: &SoakConfig, fps: u32) -> String {
    let (width, height) = config.frame_size;
    let mut text = String::from(
        "[box]\nname = \"soak\"\n[alerts]\njournal = \"journal\"\nqueue = 64\n\
         sinks = [{ kind = \"jsonl\", name = \"file\", path = \"alerts.jsonl\" }]\n",
    );
    for n in 0..config.streams {
        text.push_str(&format!(
            r#"
[[stream]]
name = "line{n}"
model = "{model}"
# Live: the two newest frames wait, older ones are dropped and counted.
queue_depth = 2
restart = {{ restart_on_eos = true }}
source = {{ kind = "gstreamer", sync = true, pipeline = "multifilesrc location={frames}/frame-%03d.png loop=true caps=\"image/png,framerate={fps}/1\" ! pngdec" }}
[stream.industrial]
capture_width = {width}
capture_height = {height}
"#,
            model = config.model,
            frames = config.frames.display(),
        ));
    }
    text
}

/// Frames per second one stream's model takes on this machine, measured through the same
/// stages the runtime runs, for `seconds`.
fn model_fps(
    profile: &Profile,
    frame: &crate::io::png::Rgb8,
    seconds: f64,
) -> Result<f64, SoakError> {
    let mut detector = InlineDetector::from_profile(profile, None, None)?;
    let sample = |seq| {
        Sample::Video(VideoFrame {
            stamp: Stamp {
                pts: Duration::from_millis(seq * 40),
                captured_at: std::time::SystemTime::now(),
                seq,
            },
            width: frame.width as u32,
            height: frame.height as u32,
            rgb: frame.pixels.clone(),
        })
    };
    // The first runs pay for lazy initialisation.
    for seq in 0..3 {
        detector
            .push(&sample(seq))
            .map_err(|e| SoakError::Setup(e.to_string()))?;
    }
    let started = Instant::now();
    let mut frames = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        detector
            .push(&sample(3 + frames))
            .map_err(|e| SoakError::Setup(e.to_string()))?;
        frames += 1;
    }
    Ok(frames as f64 / started.elapsed().as_secs_f64())
}

/// Resident memory of this process in MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn latency(mut values: Vec<f64>) -> Latency {
    if values.is_empty() {
        return Latency::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Runs the soak; `stop` ends it early (SIGINT).
pub fn run(config: &SoakConfig, stop: &AtomicBool) -> Result<SoakReport, SoakError> {
    let setup = |what: &str, err: std::io::Error| SoakError::Setup(format!("{what}: {err}"));
    // A fresh journal and sink each run: the checks count this run's alerts only.
    for old in ["journal", "alerts.jsonl"] {
        let path = config.work.join(old);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| setup("clearing the journal", e))?;
        } else if path.exists() {
            std::fs::remove_file(&path).map_err(|e| setup("clearing the alerts", e))?;
        }
    }
    std::fs::create_dir_all(&config.work).map_err(|e| setup("work folder", e))?;
    let first_frame = crate::io::png::read_png(&config.frames.join("frame-000.png"))
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    let profile_path = config.work.join("soak.toml");
    let probe = Profile::parse(&profile_text(config, 1), &profile_path)?;
    let model_fps = model_fps(&probe, &first_frame, 3.0)?;
    let fps = (model_fps * config.overload).ceil().max(1.0) as u32;
    let text = profile_text(config, fps);
    std::fs::write(&profile_path, &text).map_err(|e| setup("profile", e))?;
    let profile = Profile::parse(&text, &profile_path)?;
    log::info!(
        "soak: {} streams at {fps} frames/s each for {:?}; the model takes {model_fps:.1} frames/s",
        config.streams,
        config.duration
    );

    let runtime = Runtime::start(&profile)?;
    let metrics: Metrics = runtime.metrics().clone();
    let started = Instant::now();
    let mut rss = vec![(0.0, rss_mib())];
    let sample_every = Duration::from_secs(5)
        .min(config.duration / 10)
        .max(Duration::from_millis(500));
    let mut next_sample = started + sample_every;
    while started.elapsed() < config.duration && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() >= next_sample {
            rss.push((started.elapsed().as_secs_f64(), rss_mib()));
            next_sample += sample_every;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    rss.push((seconds, rss_mib()));
    let mut frames_in = 0;
    let mut frames_dropped = 0;
    for n in 0..config.streams {
        let stream = format!("line{n}");
        frames_in += metrics.frames_in(&stream).get();
        for stage in ["prepare", "detect", "decide"] {
            frames_dropped += metrics.frames_dropped(&stream, stage).get();
        }
    }
    // Every stream's detect stage records one latency per frame it scored.
    let frames_scored = metrics.stage_latency("detect").count();
    runtime.stop()?;

    let mut alerts_counted = 0;
    for n in 0..config.streams {
        for phase in [Phase::New, Phase::Update, Phase::End] {
            alerts_counted += metrics.alerts(&format!("line{n}"), "defect", phase).get();
        }
    }
    let alerts_file = config.work.join("alerts.jsonl");
    let lines = std::fs::read_to_string(&alerts_file).unwrap_or_default();
    let alerts: Vec<crate::alert::Alert> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ids_consecutive = alerts.windows(2).all(|w| w[1].id == w[0].id + 1);
    let events = alerts.iter().filter(|a| a.phase == Phase::New).count();
    let quarter = |first: bool| {
        let span_ns = (seconds * 1e9) as u64;
        let t0 = alerts.first().map_or(0, |a| a.decided_at_ns);
        latency(
            alerts
                .iter()
                .filter(|a| {
                    let t = a.decided_at_ns.saturating_sub(t0);
                    if first {
                        t < span_ns / 4
                    } else {
                        t >= span_ns * 3 / 4
                    }
                })
                .map(|a| a.latency_us() as f64 / 1e6)
                .collect(),
        )
    };
    Ok(SoakReport {
        model_fps,
        offered_fps: f64::from(fps),
        seconds,
        frames_in,
        frames_dropped,
        frames_scored,
        alerts_counted,
        alerts_delivered: alerts.len() as u64,
        ids_consecutive,
        events,
        rss_mib: rss,
        latency_first: quarter(true),
        latency_last: quarter(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> SoakReport {
        SoakReport {
            seconds: 100.0,
            frames_in: 1000,
            frames_dropped: 500,
            frames_scored: 500,
            alerts_counted: 12,
            alerts_delivered: 12,
            ids_consecutive: true,
            rss_mib: vec![(0.0, 50.0), (10.0, 80.0), (50.0, 81.0), (100.0, 82.0)],
            latency_last: Latency {
                p50: 0.1,
                p99: 0.3,
                max: 0.4,
            },
            ..SoakReport::default()
        }
    }

    #[test]
    fn each_check_fails_on_its_own_symptom() {
        assert!(
            healthy().failures().is_empty(),
            "{:?}",
            healthy().failures()
        );
        let mut lost = healthy();
        lost.alerts_delivered = 11;
        assert!(lost.failures()[0].contains("12 journaled, 11 delivered"));
        let mut repeated = healthy();
        repeated.ids_consecutive = false;
        assert!(repeated.failures()[0].contains("lost or repeated"));
        let mut leak = healthy();
        leak.rss_mib.push((100.0, 100.0));
        assert!(
            leak.failures()[0].contains("grew 25.0 %"),
            "{:?}",
            leak.failures()
        );
        let mut slow = healthy();
        slow.latency_last.p99 = 3.0;
        assert!(slow.failures()[0].contains("p99"));
        let mut idle = healthy();
        idle.frames_dropped = 0;
        assert!(idle.failures()[0].contains("not overloaded"));
    }

    #[test]
    fn growth_is_measured_from_the_end_of_the_warm_up() {
        // The 50 → 80 MiB climb while plans load is not a leak.
        assert!((healthy().rss_growth().unwrap() - 82.0 / 80.0 + 1.0).abs() < 1e-9);
    }
}
