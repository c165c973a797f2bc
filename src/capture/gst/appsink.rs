//! A [`Source`] that runs a GStreamer pipeline ending in an `appsink`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::capture::{
    AudioBlock, CaptureError, GstSettings, Sample, Source, Stamp, VideoFrame, pack_rgb_rows,
};

/// Name of the appsink vigil appends to the user's pipeline fragment.
const SINK_NAME: &str = "vigil_sink";
/// How long one pull waits before checking for bus errors and interruption.
const PULL_SLICE: Duration = Duration::from_millis(100);

/// What the model wants from the stream; GStreamer converts to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GstStream {
    /// Packed RGB frames of this size.
    Video { width: u32, height: u32 },
    /// Mono f32 audio at this rate.
    Audio { rate: u32 },
}

/// Everything a [`GstSource`] needs: the profile's settings and what the model wants.
#[derive(Debug, Clone, PartialEq)]
pub struct GstConfig {
    pub settings: GstSettings,
    pub stream: GstStream,
}

impl GstConfig {
    /// The whole pipeline description: the user's fragment, vigil's conversion, the appsink.
    pub fn launch_line(&self) -> String {
        let convert = match self.stream {
            GstStream::Video { width, height } => format!(
                "videoconvert ! videoscale ! \
                 video/x-raw,format=RGB,width={width},height={height},pixel-aspect-ratio=1/1"
            ),
            GstStream::Audio { rate } => format!(
                "audioconvert ! audioresample ! \
                 audio/x-raw,format=F32LE,layout=interleaved,channels=1,rate={rate}"
            ),
        };
        format!(
            "{} ! {convert} ! appsink name={SINK_NAME} sync={} max-buffers=8 drop=false",
            self.settings.pipeline.trim(),
            self.settings.sync
        )
    }
}

struct Running {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    bus: gst::Bus,
}

/// Called with each newly built pipeline before it starts (to attach probes, or in tests to
/// break a running source).
pub type OnStart = Box<dyn Fn(&gst::Pipeline) + Send>;

/// Captures from a GStreamer pipeline; restartable after an error or the end of the stream.
pub struct GstSource {
    config: GstConfig,
    running: Option<Running>,
    next_seq: u64,
    interrupted: Arc<AtomicBool>,
    on_start: Option<OnStart>,
}

impl GstSource {
    pub fn new(config: GstConfig) -> Self {
        Self {
            config,
            running: None,
            next_seq: 0,
            interrupted: Arc::new(AtomicBool::new(false)),
            on_start: None,
        }
    }

    pub fn with_on_start(mut self, on_start: OnStart) -> Self {
        self.on_start = Some(on_start);
        self
    }

    /// Builds the pipeline without starting it: checks the elements exist and link.
    pub fn validate(config: &GstConfig) -> Result<(), CaptureError> {
        let (pipeline, _) = build(config)?;
        let _ = pipeline.set_state(gst::State::Null);
        Ok(())
    }

    fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.config.settings.stall_timeout_ms)
    }

    fn stamp(&mut self, running: &Running, sample: &gst::Sample, pts: gst::ClockTime) -> Stamp {
        let seq = self.next_seq;
        self.next_seq += 1;
        Stamp {
            pts: Duration::from_nanos(pts.nseconds()),
            captured_at: capture_time(&running.pipeline, sample, pts),
            seq,
        }
    }

    fn convert(&mut self, running: &Running, sample: &gst::Sample) -> Result<Sample, CaptureError> {
        let malformed = |detail: String| CaptureError::Malformed {
            source_name: self.config.settings.pipeline.clone(),
            detail,
        };
        let buffer = sample
            .buffer()
            .ok_or_else(|| malformed("sample without buffer".into()))?;
        let caps = sample
            .caps()
            .ok_or_else(|| malformed("sample without caps".into()))?;
        let pts = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
        match self.config.stream {
            GstStream::Video { width, height } => {
                let rgb = rgb_frame(buffer, caps, width, height).map_err(malformed)?;
                let stamp = self.stamp(running, sample, pts);
                Ok(Sample::Video(VideoFrame {
                    stamp,
                    width,
                    height,
                    rgb,
                }))
            }
            GstStream::Audio { rate } => {
                let samples = f32_samples(buffer).map_err(malformed)?;
                let stamp = self.stamp(running, sample, pts);
                Ok(Sample::Audio(AudioBlock {
                    stamp,
                    rate,
                    samples,
                }))
            }
        }
    }
}

/// When the sensor produced the buffer, on the wall clock: its running time converted to the
/// pipeline clock, then moved by the clock's current offset from the wall clock (not when
/// vigil got it).
pub(super) fn capture_time(
    pipeline: &gst::Pipeline,
    sample: &gst::Sample,
    pts: gst::ClockTime,
) -> SystemTime {
    let running_time = sample
        .segment()
        .and_then(|segment| segment.downcast_ref::<gst::ClockTime>())
        .and_then(|segment| segment.to_running_time(pts))
        .unwrap_or(pts);
    match (pipeline.clock(), pipeline.base_time()) {
        (Some(clock), Some(base)) => {
            let now_clock = clock.time();
            let captured_clock = base + running_time;
            let age = now_clock.saturating_sub(captured_clock);
            SystemTime::now() - Duration::from_nanos(age.nseconds())
        }
        _ => SystemTime::now(),
    }
}

/// The packed RGB pixels of a `width × height` RGB buffer.
pub(super) fn rgb_frame(
    buffer: &gst::BufferRef,
    caps: &gst::CapsRef,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, String> {
    let info =
        gst_video::VideoInfo::from_caps(caps).map_err(|err| format!("video caps {caps}: {err}"))?;
    if info.width() != width || info.height() != height {
        return Err(format!(
            "expected {width}x{height}, got {}x{}",
            info.width(),
            info.height()
        ));
    }
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|err| format!("cannot map video buffer: {err}"))?;
    let data = frame
        .plane_data(0)
        .map_err(|err| format!("cannot read plane 0: {err}"))?;
    pack_rgb_rows(data, frame.plane_stride()[0], width, height)
}

/// The samples of an interleaved mono F32LE buffer.
pub(super) fn f32_samples(buffer: &gst::BufferRef) -> Result<Vec<f32>, String> {
    let map = buffer
        .map_readable()
        .map_err(|err| format!("cannot map audio buffer: {err}"))?;
    let bytes = map.as_slice();
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "audio buffer of {} bytes is not whole f32 samples",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Sets the pipeline playing; on failure takes it back to NULL and returns the reason.
pub(super) fn play(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    description: &str,
) -> Result<(), CaptureError> {
    let Err(err) = pipeline.set_state(gst::State::Playing) else {
        return Ok(());
    };
    // The reason (unknown format, caps that can't be negotiated, missing file) is on the bus;
    // the state-change error itself only says that it failed.
    let reason = poll_bus(bus).err();
    let _ = pipeline.set_state(gst::State::Null);
    Err(reason.unwrap_or_else(|| CaptureError::Gst(format!("cannot start `{description}`: {err}"))))
}

/// The first error or end-of-stream waiting on the bus, if any (warnings are logged).
pub(super) fn poll_bus(bus: &gst::Bus) -> Result<bool, CaptureError> {
    while let Some(message) = bus.pop_filtered(&[
        gst::MessageType::Error,
        gst::MessageType::Eos,
        gst::MessageType::Warning,
    ]) {
        match message.view() {
            gst::MessageView::Error(err) => return Err(bus_error(err)),
            gst::MessageView::Eos(_) => return Ok(true),
            gst::MessageView::Warning(warning) => {
                log::warn!(
                    "GStreamer warning from {}: {}",
                    source_name(message.src()),
                    warning.error()
                );
            }
            _ => {}
        }
    }
    Ok(false)
}

fn build(config: &GstConfig) -> Result<(gst::Pipeline, gst_app::AppSink), CaptureError> {
    super::init()?;
    let line = config.launch_line();
    let element = gst::parse::launch(&line)
        .map_err(|err| CaptureError::Gst(format!("cannot build pipeline: {err}: `{line}`")))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| CaptureError::Gst(format!("not a pipeline: `{line}`")))?;
    let sink = pipeline
        .by_name(SINK_NAME)
        .and_then(|sink| sink.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| CaptureError::Gst(format!("no appsink named {SINK_NAME} in `{line}`")))?;
    Ok((pipeline, sink))
}

pub(super) fn source_name(src: Option<&gst::Object>) -> String {
    src.map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "pipeline".into())
}

pub(super) fn bus_error(err: &gst::message::Error) -> CaptureError {
    let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
    CaptureError::Gst(format!(
        "{}: {}{debug}",
        source_name(err.src()),
        err.error()
    ))
}

impl Source for GstSource {
    fn start(&mut self) -> Result<(), CaptureError> {
        self.stop();
        self.interrupted.store(false, Ordering::SeqCst);
        let (pipeline, sink) = build(&self.config)?;
        let bus = pipeline
            .bus()
            .ok_or_else(|| CaptureError::Gst("pipeline has no bus".into()))?;
        let running = Running {
            pipeline,
            sink,
            bus,
        };
        if let Some(on_start) = &self.on_start {
            on_start(&running.pipeline);
        }
        play(
            &running.pipeline,
            &running.bus,
            &self.config.settings.pipeline,
        )?;
        self.running = Some(running);
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        let Some(running) = self.running.take() else {
            return Err(CaptureError::Gst("source read before start".into()));
        };
        let waited_since = Instant::now();
        let result = loop {
            if self.interrupted.load(Ordering::SeqCst) {
                break Ok(None);
            }
            // Errors first: a live source that failed may still have buffers queued, and a
            // camera that reports "device vanished" must not be read as if it were fine.
            match poll_bus(&running.bus) {
                Err(err) => break Err(err),
                Ok(true) if running.sink.is_eos() => break Ok(None),
                Ok(_) => {}
            }
            if let Some(sample) = running
                .sink
                .try_pull_sample(gst::ClockTime::from_nseconds(PULL_SLICE.as_nanos() as u64))
            {
                break self.convert(&running, &sample).map(Some);
            }
            if running.sink.is_eos() {
                break Ok(None);
            }
            if waited_since.elapsed() > self.stall_timeout() {
                break Err(CaptureError::Stalled {
                    source_name: self.config.settings.pipeline.clone(),
                    after: self.stall_timeout(),
                });
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
        format!("gstreamer `{}`", self.config.settings.pipeline)
    }

    fn interrupter(&self) -> Option<Arc<AtomicBool>> {
        Some(self.interrupted.clone())
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        self.stop();
    }
}
