//! Whole media files in and out, for the tools around the live pipelines: decoding a recording
//! to frames or samples (training-set material), and writing generated frames and audio to one
//! Matroska file that a live pipeline then reads like any camera recording (the demo's clip).

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::appsink::{GstConfig, GstSource, GstStream, poll_bus};
use crate::capture::{CaptureError, GstSettings, Sample, Source};

/// A file path as one quoted `gst-launch` property value.
fn quoted(path: &Path) -> Result<String, CaptureError> {
    let text = path.to_str().ok_or_else(|| CaptureError::Unsupported {
        what: "a path that is not UTF-8",
        detail: path.display().to_string(),
    })?;
    if text.contains('"') {
        return Err(CaptureError::Unsupported {
            what: "a path with a double quote",
            detail: text.to_string(),
        });
    }
    Ok(format!("\"{text}\""))
}

/// Decodes a whole file, once more if GStreamer reports a stream error the first time.
///
/// Decoding a file is deterministic, yet with several decoding pipelines running at once (the
/// MAVD material loader's tests) vorbisdec has been seen, rarely, to receive an Ogg file's
/// audio packets before its headers ("no header sent yet") and fail a file that decodes on
/// every other run. A second failure is returned: a file that is really corrupt fails twice.
fn decode(path: &Path, fragment: &str, stream: GstStream) -> Result<Vec<Sample>, CaptureError> {
    if !path.is_file() {
        return Err(CaptureError::Io {
            path: path.display().to_string(),
            err: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    match decode_once(path, fragment, stream) {
        Err(CaptureError::Gst(detail)) => {
            log::warn!(
                "decoding {} failed ({detail}); decoding it once more",
                path.display()
            );
            decode_once(path, fragment, stream)
        }
        result => result,
    }
}

fn decode_once(
    path: &Path,
    fragment: &str,
    stream: GstStream,
) -> Result<Vec<Sample>, CaptureError> {
    let mut source = GstSource::new(GstConfig {
        settings: GstSettings {
            pipeline: format!("filesrc location={} ! decodebin{fragment}", quoted(path)?),
            sync: false,
            stall_timeout_ms: 10_000,
        },
        stream,
    });
    source.start()?;
    let mut samples = Vec::new();
    let result = loop {
        match source.next() {
            Ok(Some(sample)) => samples.push(sample),
            Ok(None) => break Ok(samples),
            Err(err) => break Err(err),
        }
    };
    source.stop();
    result
}

/// Every frame of a video file as packed RGB `width × height`, resampled in time to
/// `frames_per_second` (frames repeated or dropped on the file's timestamps).
pub fn decode_video_file(
    path: &Path,
    width: u32,
    height: u32,
    frames_per_second: u32,
) -> Result<Vec<Vec<u8>>, CaptureError> {
    let fragment = format!(" ! videorate ! video/x-raw,framerate={frames_per_second}/1");
    Ok(decode(path, &fragment, GstStream::Video { width, height })?
        .into_iter()
        .filter_map(|sample| match sample {
            Sample::Video(frame) => Some(frame.rgb),
            _ => None,
        })
        .collect())
}

/// The audio of a file as mono f32 samples at `rate` Hz.
pub fn decode_audio_file(path: &Path, rate: u32) -> Result<Vec<f32>, CaptureError> {
    Ok(decode(path, "", GstStream::Audio { rate })?
        .into_iter()
        .flat_map(|sample| match sample {
            Sample::Audio(block) => block.samples,
            _ => Vec::new(),
        })
        .collect())
}

/// Generated media to write: packed RGB frames at a fixed rate and mono f32 audio.
#[derive(Debug, Clone, Copy)]
pub struct AvFile<'a> {
    pub width: u32,
    pub height: u32,
    pub frames_per_second: u32,
    pub frames: &'a [Vec<u8>],
    pub audio_rate: u32,
    pub audio: &'a [f32],
}

/// Writes `media` to a Matroska file: Motion-JPEG video (quality 90) and 16-bit PCM audio, the
/// two timestamped from zero on one timeline.
pub fn write_av_file(path: &Path, media: &AvFile<'_>) -> Result<(), CaptureError> {
    super::init()?;
    let frame_bytes = media.width as usize * media.height as usize * 3;
    if media.frames_per_second == 0 || media.audio_rate == 0 {
        return Err(CaptureError::Unsupported {
            what: "a frame or sample rate of 0",
            detail: path.display().to_string(),
        });
    }
    if let Some(index) = media.frames.iter().position(|f| f.len() != frame_bytes) {
        return Err(CaptureError::Unsupported {
            what: "frames of the wrong size",
            detail: format!(
                "frame {index} holds {} bytes, {}×{} RGB is {frame_bytes}",
                media.frames[index].len(),
                media.width,
                media.height
            ),
        });
    }
    let line = format!(
        "appsrc name=video format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate={fps}/1 \
         ! videoconvert ! jpegenc quality=90 ! queue ! mux. \
         appsrc name=audio format=time caps=audio/x-raw,format=F32LE,layout=interleaved,channels=1,rate={rate} \
         ! audioconvert ! audio/x-raw,format=S16LE ! queue ! mux. \
         matroskamux name=mux ! filesink location={location}",
        w = media.width,
        h = media.height,
        fps = media.frames_per_second,
        rate = media.audio_rate,
        location = quoted(path)?,
    );
    let pipeline = gst::parse::launch(&line)
        .map_err(|err| CaptureError::Gst(format!("cannot build the writer: {err}")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| CaptureError::Gst("the writer is not a pipeline".into()))?;
    let source = |name: &str| {
        pipeline
            .by_name(name)
            .and_then(|element| element.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| CaptureError::Gst(format!("no appsrc {name} in the writer")))
    };
    let (video, audio) = (source("video")?, source("audio")?);
    let bus = pipeline
        .bus()
        .ok_or_else(|| CaptureError::Gst("the writer has no bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|err| CaptureError::Gst(format!("cannot start the writer: {err}")))?;
    let result = push_interleaved(media, &video, &audio).and_then(|()| wait_for_eos(&bus));
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Pushes frames and audio blocks in time order, so the muxer never waits on one stream while
/// the other piles up.
fn push_interleaved(
    media: &AvFile<'_>,
    video: &gst_app::AppSrc,
    audio: &gst_app::AppSrc,
) -> Result<(), CaptureError> {
    let frame_time = Duration::from_secs(1) / media.frames_per_second;
    let block = (media.audio_rate / 50).max(1) as usize; // 20 ms
    let mut audio_at = 0usize;
    let push = |source: &gst_app::AppSrc, bytes: Vec<u8>, pts: Duration, duration: Duration| {
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        if let Some(buffer) = buffer.get_mut() {
            buffer.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
            buffer.set_duration(gst::ClockTime::from_nseconds(duration.as_nanos() as u64));
        }
        source
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|err| CaptureError::Gst(format!("the writer refused a buffer: {err:?}")))
    };
    let audio_time = |samples: usize| {
        Duration::from_nanos(
            (samples as u128 * 1_000_000_000 / u128::from(media.audio_rate)) as u64,
        )
    };
    // Audio up to `until` (all of it for None), in 20 ms blocks.
    let mut push_audio = |until: Option<Duration>| -> Result<(), CaptureError> {
        while audio_at < media.audio.len() && until.is_none_or(|t| audio_time(audio_at) <= t) {
            let end = (audio_at + block).min(media.audio.len());
            let bytes = media.audio[audio_at..end]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            let (start_time, end_time) = (audio_time(audio_at), audio_time(end));
            push(audio, bytes, start_time, end_time - start_time)?;
            audio_at = end;
        }
        Ok(())
    };
    for (index, frame) in media.frames.iter().enumerate() {
        let pts = frame_time * index as u32;
        push_audio(Some(pts + frame_time))?;
        push(video, frame.clone(), pts, frame_time)?;
    }
    push_audio(None)?;
    for source in [video, audio] {
        source
            .end_of_stream()
            .map_err(|err| CaptureError::Gst(format!("the writer refused the end: {err:?}")))?;
    }
    Ok(())
}

fn wait_for_eos(bus: &gst::Bus) -> Result<(), CaptureError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if poll_bus(bus)? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(CaptureError::Gst(
        "the writer did not finish within 120 s".into(),
    ))
}
