//! Evidence on alerts: what the sensor saw from a few seconds before an event opened until a
//! few seconds after it ended, written next to the alert.
//!
//! Each stream with `[stream.evidence]` keeps a pre-event buffer of its recent samples: every
//! audio block, and video frames thinned to `keyframes_per_s` (a 640×480 frame is 0.9 MB; a
//! box keeps seconds of them, not minutes). When an event opens, a recording starts with what
//! the buffer holds from `pre_s` before the event's start; it takes every sample until `post_s`
//! after the event's end (at most `max_event_s` in all), then is written to
//! `<dir>/<stream>-<event>/`: `frame-<ms>.png` keyframes (video) or `clip.wav` (audio), and
//! `event.json` describing them. Folders appear whole: they are written under a dot-name and
//! renamed. Every alert of the event names that folder in `Alert::evidence`.
//!
//! Storage is bounded: after each write, the oldest evidence folders in `dir` are deleted
//! until the folder holds at most `max_bytes` (the newest is always kept).
//!
//! The recorder runs on its own thread: capture and decide only hand it samples and alerts
//! through bounded queues and never wait for the disk. A full queue costs evidence, never an
//! alert: the sample queue drops its oldest sample silently (the recorder keeps only a
//! rolling pre-roll anyway), and an alert the recorder cannot take is logged as a warning.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Deserialize;

use crate::alert::{Alert, Phase, SnapshotName};
use crate::capture::Sample;

/// `[stream.evidence]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSettings {
    /// Where evidence folders go (relative to the profile).
    pub dir: PathBuf,
    /// Seconds kept before an event's start.
    #[serde(default = "default_pre_s")]
    pub pre_s: f32,
    /// Seconds kept after an event's end.
    #[serde(default = "default_post_s")]
    pub post_s: f32,
    /// Video frames kept per second (audio keeps every sample).
    #[serde(default = "default_keyframes_per_s")]
    pub keyframes_per_s: f32,
    /// Longest recording, pre and post included: a long event is cut there.
    #[serde(default = "default_max_event_s")]
    pub max_event_s: f32,
    /// Most bytes the evidence folder holds; the oldest evidence goes first.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_pre_s() -> f32 {
    3.0
}
fn default_post_s() -> f32 {
    2.0
}
fn default_keyframes_per_s() -> f32 {
    2.0
}
fn default_max_event_s() -> f32 {
    30.0
}
fn default_max_bytes() -> u64 {
    256 << 20
}

impl EvidenceSettings {
    /// The settings' problem, if any, in words.
    pub fn problem(&self) -> Option<String> {
        let seconds = |name: &str, v: f32, max: f32| {
            (!(0.0..=max).contains(&v))
                .then(|| format!("evidence.{name} = {v} is not within 0..={max} s"))
        };
        seconds("pre_s", self.pre_s, 60.0)
            .or_else(|| seconds("post_s", self.post_s, 60.0))
            .or_else(|| seconds("max_event_s", self.max_event_s, 600.0))
            .or_else(|| {
                (!(self.keyframes_per_s > 0.0 && self.keyframes_per_s <= 60.0)).then(|| {
                    format!(
                        "evidence.keyframes_per_s = {} is not within (0, 60]",
                        self.keyframes_per_s
                    )
                })
            })
            .or_else(|| {
                (self.max_bytes < 1 << 20)
                    .then(|| format!("evidence.max_bytes = {} is under 1 MiB", self.max_bytes))
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence of stream {stream}: {detail}")]
    Settings { stream: String, detail: String },
    #[error("evidence of stream {stream}: cannot start its thread: {err}")]
    Thread { stream: String, err: std::io::Error },
}

/// The evidence folder name of an event.
pub fn folder_name(stream: &str, event: u64) -> Option<SnapshotName> {
    SnapshotName::try_from(format!("{stream}-{event}").as_str()).ok()
}

/// Samples waiting for the recorder before the oldest are dropped.
const SAMPLE_QUEUE: usize = 64;
/// Alerts waiting for the recorder.
const ALERT_QUEUE: usize = 256;

/// Hands the recorder the capture side's samples, thinning video to the keyframe rate.
pub struct SampleTap {
    samples: Sender<Sample>,
    drop_oldest: Receiver<Sample>,
    frame_every: Duration,
    last_frame: Option<Duration>,
}

impl SampleTap {
    pub fn offer(&mut self, sample: &Sample) {
        if let Sample::Video(frame) = sample {
            let pts = frame.stamp.pts;
            // A PTS that went back is a restarted source: start the thinning over.
            if let Some(last) = self.last_frame
                && pts >= last
                && pts - last < self.frame_every
            {
                return;
            }
            self.last_frame = Some(pts);
        }
        let mut sample = sample.clone();
        // Drop the oldest rather than block capture.
        while let Err(TrySendError::Full(back)) = self.samples.try_send(sample) {
            let _ = self.drop_oldest.try_recv();
            sample = back;
        }
    }
}

/// Hands the recorder the decide side's alerts, stamping each with its evidence folder.
#[derive(Clone)]
pub struct AlertTap {
    alerts: Sender<Alert>,
}

impl AlertTap {
    pub fn stamp_and_offer(&self, alert: &mut Alert) {
        alert.evidence = folder_name(&alert.stream, alert.event);
        if self.alerts.try_send(alert.clone()).is_err() {
            log::warn!(
                "stream {}: evidence recorder behind; event {} may lack evidence",
                alert.stream,
                alert.event
            );
        }
    }
}

/// The recorder thread of one stream; it writes what is still recording when the taps go.
pub struct Recorder {
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn start(
        stream: &str,
        settings: &EvidenceSettings,
        dir: PathBuf,
    ) -> Result<(Recorder, SampleTap, AlertTap), EvidenceError> {
        let bad = |detail: String| EvidenceError::Settings {
            stream: stream.into(),
            detail,
        };
        if let Some(problem) = settings.problem() {
            return Err(bad(problem));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|err| bad(format!("cannot create {}: {err}", dir.display())))?;
        let (samples_tx, samples_rx) = crossbeam_channel::bounded(SAMPLE_QUEUE);
        let (alerts_tx, alerts_rx) = crossbeam_channel::bounded(ALERT_QUEUE);
        let mut state = RecorderState {
            stream: stream.into(),
            settings: settings.clone(),
            dir,
            buffer: VecDeque::new(),
            recordings: BTreeMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("evidence-{stream}"))
            .spawn({
                let samples_rx = samples_rx.clone();
                move || state.run(&samples_rx, &alerts_rx)
            })
            .map_err(|err| EvidenceError::Thread {
                stream: stream.into(),
                err,
            })?;
        Ok((
            Recorder {
                thread: Some(thread),
            },
            SampleTap {
                samples: samples_tx,
                drop_oldest: samples_rx,
                frame_every: Duration::from_secs_f32(1.0 / settings.keyframes_per_s),
                last_frame: None,
            },
            AlertTap { alerts: alerts_tx },
        ))
    }

    /// Waits until everything recorded is written (the taps must be dropped first).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("evidence recorder panicked");
        }
    }
}

struct Recording {
    name: SnapshotName,
    label: String,
    start: Duration,
    /// Set by the event's end alert.
    end: Option<Duration>,
    samples: Vec<Sample>,
}

struct RecorderState {
    stream: String,
    settings: EvidenceSettings,
    dir: PathBuf,
    /// Recent samples, oldest first, spanning at least `pre_s`.
    buffer: VecDeque<Sample>,
    recordings: BTreeMap<u64, Recording>,
}

impl RecorderState {
    /// Until both taps are gone: capture may stop before decide has sent its last alerts.
    fn run(&mut self, samples: &Receiver<Sample>, alerts: &Receiver<Alert>) {
        let no_samples = crossbeam_channel::never();
        let no_alerts = crossbeam_channel::never();
        let (mut samples_open, mut alerts_open) = (true, true);
        while samples_open || alerts_open {
            crossbeam_channel::select! {
                recv(if samples_open { samples } else { &no_samples }) -> sample => match sample {
                    Ok(sample) => self.on_sample(sample),
                    Err(_) => samples_open = false,
                },
                recv(if alerts_open { alerts } else { &no_alerts }) -> alert => match alert {
                    Ok(alert) => self.on_alert(&alert),
                    Err(_) => alerts_open = false,
                },
            }
        }
        // The stream ended: write whatever is still recording.
        let open: Vec<u64> = self.recordings.keys().copied().collect();
        for event in open {
            self.finish(event);
        }
    }

    fn on_alert(&mut self, alert: &Alert) {
        let Some(name) = alert.evidence.clone() else {
            return;
        };
        let start = Duration::from_nanos(alert.start_pts_ns);
        match alert.phase {
            Phase::New => {
                let from = start.saturating_sub(Duration::from_secs_f32(self.settings.pre_s));
                let samples = self
                    .buffer
                    .iter()
                    .filter(|s| s.stamp().pts >= from || sample_end(s) > from)
                    .cloned()
                    .collect();
                self.recordings.insert(
                    alert.event,
                    Recording {
                        name,
                        label: alert.label.to_string(),
                        start,
                        end: None,
                        samples,
                    },
                );
            }
            Phase::Update => {}
            Phase::End => {
                if let Some(recording) = self.recordings.get_mut(&alert.event) {
                    recording.end = Some(Duration::from_nanos(alert.pts_ns));
                }
            }
        }
    }

    fn on_sample(&mut self, sample: Sample) {
        let pts = sample.stamp().pts;
        let keep = Duration::from_secs_f32(self.settings.pre_s + 1.0);
        let mut done = Vec::new();
        let max_event = Duration::from_secs_f32(self.settings.max_event_s);
        let post = Duration::from_secs_f32(self.settings.post_s);
        for (event, recording) in &mut self.recordings {
            let cut = recording.start + max_event;
            let over = recording.end.is_some_and(|end| pts > end + post) || pts > cut;
            if over {
                done.push(*event);
            } else {
                recording.samples.push(sample.clone());
            }
        }
        for event in done {
            self.finish(event);
        }
        // A PTS that went back is a restarted source: the buffer's past no longer precedes it.
        if self.buffer.back().is_some_and(|s| s.stamp().pts > pts) {
            self.buffer.clear();
        }
        self.buffer.push_back(sample);
        while self
            .buffer
            .front()
            .is_some_and(|s| pts.saturating_sub(sample_end(s)) > keep)
        {
            self.buffer.pop_front();
        }
    }

    fn finish(&mut self, event: u64) {
        let Some(recording) = self.recordings.remove(&event) else {
            return;
        };
        match write_recording(&self.dir, &self.stream, event, &recording) {
            Ok(bytes) => {
                log::info!(
                    "stream {}: evidence {} written ({bytes} bytes)",
                    self.stream,
                    recording.name
                );
                if let Err(err) =
                    enforce_budget(&self.dir, self.settings.max_bytes, &recording.name)
                {
                    log::warn!("evidence folder {}: {err}", self.dir.display());
                }
            }
            Err(err) => log::warn!(
                "stream {}: evidence {} not written: {err}",
                self.stream,
                recording.name
            ),
        }
    }
}

/// Stream time just after a sample's last data.
fn sample_end(sample: &Sample) -> Duration {
    match sample {
        Sample::Audio(block) if block.rate > 0 => {
            block.stamp.pts
                + Duration::from_secs_f64(block.samples.len() as f64 / f64::from(block.rate))
        }
        other => other.stamp().pts,
    }
}

/// Writes a recording under a dot-name and renames it into place; returns its size.
fn write_recording(
    dir: &Path,
    stream: &str,
    event: u64,
    recording: &Recording,
) -> Result<u64, String> {
    let partial = dir.join(format!(".{}.partial", recording.name));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|err| format!("{}: {err}", partial.display()))?;
    let mut files = Vec::new();
    let mut audio: Vec<f32> = Vec::new();
    let mut rate = 0;
    let mut first_pts = None;
    let mut last_pts = Duration::ZERO;
    for sample in &recording.samples {
        first_pts.get_or_insert(sample.stamp().pts);
        last_pts = sample_end(sample);
        match sample {
            Sample::Video(frame) => {
                let file = format!("frame-{:010}.png", frame.stamp.pts.as_millis());
                crate::io::png::write_rgb(
                    &partial.join(&file),
                    frame.width as usize,
                    frame.height as usize,
                    &frame.rgb,
                )?;
                files.push(file);
            }
            Sample::Audio(block) => {
                rate = block.rate;
                audio.extend_from_slice(&block.samples);
            }
            Sample::Spectral(_) | Sample::Features(_) => {}
        }
    }
    if !audio.is_empty() {
        let clip = partial.join("clip.wav");
        crate::io::wav::write_mono_pcm16(&clip, rate, &audio)
            .map_err(|err| format!("{}: {err}", clip.display()))?;
        files.push("clip.wav".into());
    }
    let description = serde_json::json!({
        "stream": stream,
        "event": event,
        "label": recording.label,
        "event_start_pts_ns": recording.start.as_nanos() as u64,
        "event_end_pts_ns": recording.end.map(|e| e.as_nanos() as u64),
        "first_pts_ns": first_pts.map(|p| p.as_nanos() as u64),
        "last_pts_ns": last_pts.as_nanos() as u64,
        "files": files,
    });
    std::fs::write(partial.join("event.json"), description.to_string())
        .map_err(|err| format!("event.json: {err}"))?;
    let finished = dir.join(recording.name.as_str());
    let _ = std::fs::remove_dir_all(&finished);
    std::fs::rename(&partial, &finished).map_err(|err| format!("{}: {err}", finished.display()))?;
    folder_bytes(&finished).map_err(|err| err.to_string())
}

fn folder_bytes(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let meta = entry?.metadata()?;
        total += if meta.is_dir() { 0 } else { meta.len() };
    }
    Ok(total)
}

/// Deletes the oldest evidence folders (by modification time) until `dir` holds at most
/// `max_bytes`; `newest` stays whatever its size.
fn enforce_budget(dir: &Path, max_bytes: u64, newest: &str) -> std::io::Result<()> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        // Another stream's recorder may delete it meanwhile.
        let Ok(bytes) = folder_bytes(&entry.path()) else {
            continue;
        };
        folders.push((modified, name, bytes));
    }
    folders.sort();
    let mut total: u64 = folders.iter().map(|f| f.2).sum();
    for (_, name, bytes) in folders {
        if total <= max_bytes {
            break;
        }
        if name == newest {
            continue;
        }
        match std::fs::remove_dir_all(dir.join(&name)) {
            Ok(()) => log::info!("evidence {name} deleted: folder over {max_bytes} bytes"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        total -= bytes;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
