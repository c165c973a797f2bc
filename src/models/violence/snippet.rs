//! Cutting synchronised video and audio into XD-Violence snippets: 16 frames at 24 fps, with
//! the 0.96 s audio patch (96 log-mel frames, 15,600 samples) that ends where the snippet ends.
//!
//! Both streams carry presentation times on the pipeline's one clock. Frames are grouped by
//! 16; a snippet is complete when the audio has reached its end time, and its audio window is
//! read from a bounded history of samples placed by their own timestamps. What live streams do
//! wrong is handled here, counted, and never silently:
//!
//! - **lost frames** (a gap in video times): the last frame is repeated to keep 24 fps, up to
//!   [`SnippetConfig::max_repeat`] frames; a longer gap starts a new snippet (the partial one
//!   is dropped and counted) because motion across it is meaningless;
//! - **lost audio packets**: the missing span reads as silence and the snippet says how many
//!   samples were missing;
//! - **drift** (audio times running ahead of or behind video): a snippet waits for its audio at
//!   most [`SnippetConfig::max_audio_wait`] of video time, then goes out with what there is;
//!   audio further ahead than the history keeps is dropped as it ages out;
//! - **no audio track**: every snippet carries `audio: None`, and the caller decides.

use std::collections::VecDeque;
use std::time::Duration;

use crate::capture::{AudioBlock, VideoFrame};

/// XD-Violence's snippet protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct SnippetConfig {
    pub frames_per_second: u32,
    pub frames_per_snippet: usize,
    pub audio_rate: u32,
    /// Audio window length in samples: the 15,600 samples (0.975 s at 16 kHz) whose 96 log-mel
    /// frames of 25 ms at a 10 ms hop make the 0.96 s patch YAMNet and VGGish read.
    pub audio_window: usize,
    /// Longest run of missing frames filled by repeating the last one.
    pub max_repeat: usize,
    /// How far (in video time) a complete snippet waits for its audio.
    pub max_audio_wait: Duration,
    /// Audio blocks starting within this of where the previous one ended are taken as
    /// contiguous: resampling and demuxing round timestamps by a few samples, and a gap or
    /// overlap that small is not lost or repeated audio (GStreamer's audio sinks use the same
    /// 40 ms `alignment-threshold`).
    pub audio_alignment: Duration,
}

impl Default for SnippetConfig {
    fn default() -> Self {
        Self {
            frames_per_second: 24,
            frames_per_snippet: 16,
            audio_rate: 16_000,
            audio_window: 15_600,
            max_repeat: 6,
            max_audio_wait: Duration::from_secs(2),
            audio_alignment: Duration::from_millis(40),
        }
    }
}

/// Why a sample was refused (the assembler keeps what it had).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SnippetError {
    #[error(
        "video frame {seq} is {width}×{height}, the stream's frames are {expected_width}×{expected_height}"
    )]
    FrameSize {
        seq: u64,
        width: u32,
        height: u32,
        expected_width: u32,
        expected_height: u32,
    },
    #[error("video frame {seq} at {pts:?} goes back in time (previous frame at {previous:?})")]
    FrameOrder {
        seq: u64,
        pts: Duration,
        previous: Duration,
    },
    #[error("audio block {seq} is at {rate} Hz, the snippets take {expected} Hz")]
    AudioRate { seq: u64, rate: u32, expected: u32 },
    #[error("audio block {seq} holds a sample that is not finite")]
    AudioNotFinite { seq: u64 },
}

/// One snippet, ready for the feature extractors.
#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    /// Counts complete snippets from 0.
    pub index: u64,
    /// Time of the first frame, and the end of the last frame's display.
    pub start: Duration,
    pub end: Duration,
    pub frames: Vec<VideoFrame>,
    /// The window of audio ending at `end`; `None` when the stream has no audio track or none
    /// of the window arrived.
    pub audio: Option<Vec<f32>>,
    /// Samples of the window that never arrived (read as silence).
    pub audio_missing: usize,
    /// Frames that are repeats of the one before (lost frames filled in).
    pub frames_repeated: usize,
}

/// What went wrong so far, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnippetStats {
    pub snippets: u64,
    pub frames_repeated: u64,
    /// Frames thrown away with a partial snippet cut by a long video gap.
    pub frames_dropped: u64,
    /// Snippets sent without all their audio (gaps, drift, or none at all).
    pub snippets_short_of_audio: u64,
    /// Audio samples dropped as overlapping what was already there.
    pub audio_overlap_dropped: u64,
}

/// Builds snippets from interleaved video frames and audio blocks.
#[derive(Debug)]
pub struct SnippetAssembler {
    config: SnippetConfig,
    has_audio: bool,
    frame_size: Option<(u32, u32)>,
    last_frame: Option<VideoFrame>,
    /// The snippet being filled, and how many of its frames are repeats.
    open: Vec<VideoFrame>,
    open_repeats: usize,
    /// Complete snippets waiting for their audio.
    waiting: VecDeque<Snippet>,
    /// Audio history: samples from `audio_start` (in samples since time 0) on.
    audio: VecDeque<f32>,
    /// Which history samples arrived (false: a gap filled with silence).
    audio_present: VecDeque<bool>,
    audio_start: u64,
    next_index: u64,
    stats: SnippetStats,
}

impl SnippetAssembler {
    /// `has_audio: false` for a stream without an audio track.
    pub fn new(config: SnippetConfig, has_audio: bool) -> Self {
        Self {
            config,
            has_audio,
            frame_size: None,
            last_frame: None,
            open: Vec::new(),
            open_repeats: 0,
            waiting: VecDeque::new(),
            audio: VecDeque::new(),
            audio_present: VecDeque::new(),
            audio_start: 0,
            next_index: 0,
            stats: SnippetStats::default(),
        }
    }

    pub fn stats(&self) -> SnippetStats {
        self.stats
    }

    fn frame_period(&self) -> Duration {
        Duration::from_secs(1) / self.config.frames_per_second.max(1)
    }

    /// Audio samples kept: the window plus what `max_audio_wait` can ask for later.
    fn history_capacity(&self) -> usize {
        self.config.audio_window
            + (self.config.max_audio_wait.as_secs_f64() * f64::from(self.config.audio_rate))
                as usize
            + self.config.audio_rate as usize
    }

    fn sample_at(&self, time: Duration) -> u64 {
        (time.as_secs_f64() * f64::from(self.config.audio_rate)).round() as u64
    }

    /// Adds a frame; returns the snippets it completed whose audio is there.
    pub fn push_video(&mut self, frame: VideoFrame) -> Result<Vec<Snippet>, SnippetError> {
        let size = (frame.width, frame.height);
        if let Some(expected) = self.frame_size
            && expected != size
        {
            return Err(SnippetError::FrameSize {
                seq: frame.stamp.seq,
                width: size.0,
                height: size.1,
                expected_width: expected.0,
                expected_height: expected.1,
            });
        }
        let period = self.frame_period();
        // Only the previous frame's time is needed here; its pixels only when repeated.
        if let Some(previous) = self.last_frame.as_ref().map(|last| last.stamp.pts) {
            if frame.stamp.pts <= previous {
                return Err(SnippetError::FrameOrder {
                    seq: frame.stamp.seq,
                    pts: frame.stamp.pts,
                    previous,
                });
            }
            // Frames missing between the last and this one (half a period of jitter allowed).
            let gap = frame.stamp.pts - previous;
            let missing = (gap.as_secs_f64() / period.as_secs_f64() - 0.5)
                .floor()
                .max(0.0) as usize;
            if missing > self.config.max_repeat {
                self.stats.frames_dropped += self.open.len() as u64;
                self.open.clear();
                self.open_repeats = 0;
            } else {
                for step in 1..=missing {
                    let Some(mut repeat) = self.last_frame.clone() else {
                        break;
                    };
                    repeat.stamp.pts = previous + period * step as u32;
                    self.open_repeats += 1;
                    self.stats.frames_repeated += 1;
                    self.open.push(repeat);
                    self.close_if_full();
                }
            }
        }
        self.frame_size = Some(size);
        self.last_frame = Some(frame.clone());
        self.open.push(frame);
        self.close_if_full();
        Ok(self.ready(false))
    }

    fn close_if_full(&mut self) {
        if self.open.len() < self.config.frames_per_snippet {
            return;
        }
        let frames: Vec<VideoFrame> = self.open.drain(..).collect();
        let start = frames[0].stamp.pts;
        let end = frames[frames.len() - 1].stamp.pts + self.frame_period();
        self.waiting.push_back(Snippet {
            index: 0,
            start,
            end,
            frames,
            audio: None,
            audio_missing: self.config.audio_window,
            frames_repeated: std::mem::take(&mut self.open_repeats),
        });
    }

    /// Adds a block of audio; returns the snippets whose audio it completed.
    pub fn push_audio(&mut self, block: AudioBlock) -> Result<Vec<Snippet>, SnippetError> {
        if block.rate != self.config.audio_rate {
            return Err(SnippetError::AudioRate {
                seq: block.stamp.seq,
                rate: block.rate,
                expected: self.config.audio_rate,
            });
        }
        if block.samples.iter().any(|s| !s.is_finite()) {
            return Err(SnippetError::AudioNotFinite {
                seq: block.stamp.seq,
            });
        }
        let mut first = self.sample_at(block.stamp.pts);
        let end = self.audio_start + self.audio.len() as u64;
        let mut samples = block.samples.as_slice();
        let tolerance = self.sample_at(self.config.audio_alignment);
        if !self.audio.is_empty() && first.abs_diff(end) <= tolerance {
            first = end;
        }
        if self.audio.is_empty() {
            self.audio_start = first;
        } else if first > end {
            // Lost packets: silence, marked absent (or a fresh start after a long silence).
            let gap = (first - end) as usize;
            if gap > self.history_capacity() {
                self.audio.clear();
                self.audio_present.clear();
                self.audio_start = first;
            } else {
                self.audio.extend(std::iter::repeat_n(0.0, gap));
                self.audio_present.extend(std::iter::repeat_n(false, gap));
            }
        } else if first < end {
            // Overlap with what is there: keep the first arrival.
            let overlap = ((end - first) as usize).min(samples.len());
            self.stats.audio_overlap_dropped += overlap as u64;
            samples = &samples[overlap..];
        }
        self.audio.extend(samples);
        self.audio_present
            .extend(std::iter::repeat_n(true, samples.len()));
        let excess = self.audio.len().saturating_sub(self.history_capacity());
        self.audio.drain(..excess);
        self.audio_present.drain(..excess);
        self.audio_start += excess as u64;
        Ok(self.ready(false))
    }

    /// The waiting snippets that can go: those whose audio window has arrived, and those that
    /// waited too long (or all of them when `flush`).
    fn ready(&mut self, flush: bool) -> Vec<Snippet> {
        let audio_end = self.audio_start + self.audio.len() as u64;
        let latest_video = self
            .last_frame
            .as_ref()
            .map(|f| f.stamp.pts)
            .unwrap_or_default();
        let mut out = Vec::new();
        while let Some(snippet) = self.waiting.front() {
            let needed = self.sample_at(snippet.end);
            let covered = self.has_audio && !self.audio.is_empty() && audio_end >= needed;
            let waited = latest_video.saturating_sub(snippet.end) > self.config.max_audio_wait;
            if !(covered || waited || flush || !self.has_audio) {
                break;
            }
            let Some(mut snippet) = self.waiting.pop_front() else {
                break;
            };
            self.fill_audio(&mut snippet, needed);
            snippet.index = self.next_index;
            self.next_index += 1;
            self.stats.snippets += 1;
            if snippet.audio_missing > 0 {
                self.stats.snippets_short_of_audio += 1;
            }
            out.push(snippet);
        }
        out
    }

    /// Copies the window `[needed − window, needed)` out of the history.
    fn fill_audio(&self, snippet: &mut Snippet, needed: u64) {
        let window = self.config.audio_window;
        if !self.has_audio || self.audio.is_empty() {
            snippet.audio = None;
            snippet.audio_missing = window;
            return;
        }
        // The window may start before the stream did (the first snippet is shorter than it).
        let start = needed as i64 - window as i64;
        let mut samples = vec![0.0f32; window];
        let mut missing = 0;
        for (k, value) in samples.iter_mut().enumerate() {
            let at = start + k as i64;
            let index = u64::try_from(at)
                .ok()
                .and_then(|at| at.checked_sub(self.audio_start))
                .map(|i| i as usize);
            match index.filter(|&i| i < self.audio.len()) {
                Some(i) if self.audio_present[i] => *value = self.audio[i],
                _ => missing += 1,
            }
        }
        snippet.audio_missing = missing;
        snippet.audio = (missing < window).then_some(samples);
    }

    /// Ends the stream: the snippets still waiting go out with the audio there is. Frames of
    /// an unfinished snippet are dropped (and counted).
    pub fn finish(&mut self) -> Vec<Snippet> {
        self.stats.frames_dropped += self.open.len() as u64;
        self.open.clear();
        self.ready(true)
    }
}

#[cfg(test)]
mod tests;
