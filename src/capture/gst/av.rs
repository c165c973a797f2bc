//! A [`Source`] giving video and audio from one GStreamer pipeline, on one clock: a file or
//! RTSP stream with both, or a camera and a microphone in the same pipeline.
//!
//! The user's fragment names the elements the two branches start from (`decodebin name=src`
//! then `src.` for both, or `v4l2src name=cam` and `alsasrc name=mic`); vigil appends one
//! branch per stream, converting to RGB at a fixed frame rate (`videorate` fills or drops
//! frames on the clock) and to mono f32 at the model's rate, each ending in an appsink. Samples
//! come out in timestamp order across the two streams, which is what [`SnippetAssembler`]
//! needs.
//!
//! [`SnippetAssembler`]: crate::models::violence::snippet::SnippetAssembler

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::appsink::{capture_time, f32_samples, play, poll_bus, rgb_frame};
use crate::capture::{AudioBlock, CaptureError, GstSettings, Sample, Source, Stamp, VideoFrame};

const VIDEO_SINK: &str = "vigil_video";
const AUDIO_SINK: &str = "vigil_audio";
const PULL_SLICE: Duration = Duration::from_millis(20);

/// What an [`AvSource`] captures and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AvConfig {
    /// The user's fragment: sources and demuxers, with the branch elements named.
    pub settings: GstSettings,
    /// Where the video branch starts, in launch syntax (`src.`, `cam.`).
    pub video_from: String,
    /// Where the audio branch starts.
    pub audio_from: String,
    pub width: u32,
    pub height: u32,
    pub frames_per_second: u32,
    pub audio_rate: u32,
}

impl AvConfig {
    /// The whole pipeline description.
    pub fn launch_line(&self) -> String {
        let sync = self.settings.sync;
        format!(
            "{pipeline} \
             {video} ! queue name={VIDEO_SINK}_queue ! videoconvert ! videoscale ! videorate ! \
             video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1,framerate={fps}/1 ! \
             appsink name={VIDEO_SINK} sync={sync} max-buffers=8 drop=false \
             {audio} ! queue name={AUDIO_SINK}_queue ! audioconvert ! audioresample ! \
             audio/x-raw,format=F32LE,layout=interleaved,channels=1,rate={rate} ! \
             appsink name={AUDIO_SINK} sync={sync} max-buffers=64 drop=false",
            pipeline = self.settings.pipeline.trim(),
            video = self.video_from.trim(),
            audio = self.audio_from.trim(),
            w = self.width,
            h = self.height,
            fps = self.frames_per_second,
            rate = self.audio_rate,
        )
    }
}

struct Branch {
    sink: gst_app::AppSink,
    /// The next sample of this stream, pulled but not handed out yet.
    pending: Option<Sample>,
    ended: bool,
    next_seq: u64,
    delivered: u64,
}

struct Running {
    pipeline: gst::Pipeline,
    bus: gst::Bus,
    video: Branch,
    audio: Branch,
}

/// Video and audio from one pipeline, merged in timestamp order.
pub struct AvSource {
    config: AvConfig,
    running: Option<Running>,
    interrupted: Arc<AtomicBool>,
}

impl AvSource {
    pub fn new(config: AvConfig) -> Self {
        Self {
            config,
            running: None,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Builds the pipeline without starting it: checks that the elements exist and link and
    /// that both branches' start elements are named in the fragment.
    pub fn validate(config: &AvConfig) -> Result<(), CaptureError> {
        let running = build(config)?;
        let _ = running.pipeline.set_state(gst::State::Null);
        Ok(())
    }

    fn malformed(&self, detail: String) -> CaptureError {
        CaptureError::Malformed {
            source_name: self.config.settings.pipeline.clone(),
            detail,
        }
    }

    /// Pulls into whichever branch has nothing pending; `true` if anything arrived.
    fn fill(&self, running: &mut Running) -> Result<bool, CaptureError> {
        let mut arrived = false;
        let (width, height, rate) = (
            self.config.width,
            self.config.height,
            self.config.audio_rate,
        );
        for is_video in [true, false] {
            let branch = if is_video {
                &mut running.video
            } else {
                &mut running.audio
            };
            if branch.pending.is_some() || branch.ended {
                continue;
            }
            let timeout = gst::ClockTime::from_nseconds(PULL_SLICE.as_nanos() as u64);
            let Some(sample) = branch.sink.try_pull_sample(timeout) else {
                branch.ended = branch.sink.is_eos();
                continue;
            };
            let buffer = sample
                .buffer()
                .ok_or_else(|| self.malformed("sample without buffer".into()))?;
            let pts = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
            let stamp = Stamp {
                pts: Duration::from_nanos(pts.nseconds()),
                captured_at: capture_time(&running.pipeline, &sample, pts),
                seq: branch.next_seq,
            };
            branch.next_seq += 1;
            branch.pending = Some(if is_video {
                let caps = sample
                    .caps()
                    .ok_or_else(|| self.malformed("video sample without caps".into()))?;
                let rgb = rgb_frame(buffer, caps, width, height).map_err(|e| self.malformed(e))?;
                Sample::Video(VideoFrame {
                    stamp,
                    width,
                    height,
                    rgb,
                })
            } else {
                let samples = f32_samples(buffer).map_err(|e| self.malformed(e))?;
                Sample::Audio(AudioBlock {
                    stamp,
                    rate,
                    samples,
                })
            });
            arrived = true;
        }
        Ok(arrived)
    }

    /// Why nothing comes: a branch whose queue never linked means the stream lacks that track.
    fn stalled(&self, running: &Running) -> CaptureError {
        for (branch, name, from) in [
            (&running.video, "video", &self.config.video_from),
            (&running.audio, "audio", &self.config.audio_from),
        ] {
            let queue = format!("{}_queue", branch.sink.name());
            let linked = running
                .pipeline
                .by_name(&queue)
                .and_then(|queue| queue.static_pad("sink"))
                .is_some_and(|pad| pad.is_linked());
            if !linked && branch.delivered == 0 {
                return self.malformed(format!(
                    "no {name} track: the {name} branch from `{from}` never linked \
                     (a stream without {name}?)"
                ));
            }
        }
        CaptureError::Stalled {
            source_name: self.config.settings.pipeline.clone(),
            after: Duration::from_millis(self.config.settings.stall_timeout_ms),
        }
    }
}

impl Drop for AvSource {
    fn drop(&mut self) {
        // A pipeline must be taken to NULL before its last reference goes.
        self.stop();
    }
}

fn build(config: &AvConfig) -> Result<Running, CaptureError> {
    super::init()?;
    let line = config.launch_line();
    let pipeline = gst::parse::launch(&line)
        .map_err(|err| CaptureError::Gst(format!("cannot build pipeline: {err}: `{line}`")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| CaptureError::Gst(format!("not a pipeline: `{line}`")))?;
    let sink = |name: &str| {
        pipeline
            .by_name(name)
            .and_then(|sink| sink.downcast::<gst_app::AppSink>().ok())
            .map(|sink| Branch {
                sink,
                pending: None,
                ended: false,
                next_seq: 0,
                delivered: 0,
            })
            .ok_or_else(|| CaptureError::Gst(format!("no appsink {name} in `{line}`")))
    };
    let (video, audio) = (sink(VIDEO_SINK)?, sink(AUDIO_SINK)?);
    let bus = pipeline
        .bus()
        .ok_or_else(|| CaptureError::Gst("pipeline has no bus".into()))?;
    Ok(Running {
        pipeline,
        bus,
        video,
        audio,
    })
}

impl Source for AvSource {
    fn start(&mut self) -> Result<(), CaptureError> {
        self.stop();
        self.interrupted.store(false, Ordering::SeqCst);
        let running = build(&self.config)?;
        play(
            &running.pipeline,
            &running.bus,
            &self.config.settings.pipeline,
        )?;
        self.running = Some(running);
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        let Some(mut running) = self.running.take() else {
            return Err(CaptureError::Gst("source read before start".into()));
        };
        let stall = Duration::from_millis(self.config.settings.stall_timeout_ms);
        let waited_since = Instant::now();
        let result = loop {
            if self.interrupted.load(Ordering::SeqCst) {
                break Ok(None);
            }
            if let Err(err) = poll_bus(&running.bus) {
                break Err(err);
            }
            let arrived = match self.fill(&mut running) {
                Ok(arrived) => arrived,
                Err(err) => break Err(err),
            };
            // Hand out the earlier of the two pending samples, once the other stream has one
            // too (or has ended): only then is the order known.
            let video_ready = running.video.pending.is_some() || running.video.ended;
            let audio_ready = running.audio.pending.is_some() || running.audio.ended;
            if video_ready && audio_ready {
                let take_video = match (&running.video.pending, &running.audio.pending) {
                    (Some(v), Some(a)) => v.stamp().pts <= a.stamp().pts,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break Ok(None),
                };
                let branch = if take_video {
                    &mut running.video
                } else {
                    &mut running.audio
                };
                branch.delivered += 1;
                break Ok(branch.pending.take());
            }
            if !arrived && waited_since.elapsed() > stall {
                break Err(self.stalled(&running));
            }
        };
        self.running = Some(running);
        result
    }

    fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.pipeline.set_state(gst::State::Null);
        }
    }

    fn describe(&self) -> String {
        format!(
            "gstreamer audio+video `{}` (video from {}, audio from {})",
            self.config.settings.pipeline, self.config.video_from, self.config.audio_from
        )
    }

    fn interrupter(&self) -> Option<Arc<AtomicBool>> {
        Some(self.interrupted.clone())
    }
}
