//! Pre-extracted per-snippet features played as a stream: one video's RGB, audio and flow `.npy`
//! files (XD-Violence's layout, or `vigil-train mavd edge-data`'s), one [`FeatureRow`] per
//! snippet, so that `vigil run` scores them with a MAVD window graph as it scores a camera.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::features::read_snippets;
use super::window::SnippetFeatures;
use crate::capture::{CaptureError, FeatureRow, Sample, Source, Stamp};

/// Snippet length of XD-Violence: 16 frames at 24 fps.
const SNIPPET: Duration = Duration::from_nanos(666_666_667);

/// `source = { kind = "features", rgb = …, audio = …, flow = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureFilesConfig {
    /// `[snippets, width]` f32 `.npy` files (relative to the profile). RGB and flow take one
    /// crop's file.
    pub rgb: PathBuf,
    pub audio: PathBuf,
    pub flow: PathBuf,
    /// Snippets per second of replay; absent: as fast as the stream takes them.
    #[serde(default)]
    pub snippets_per_s: Option<f32>,
}

impl FeatureFilesConfig {
    /// The same files with their paths taken from `dir`.
    pub fn resolved(&self, dir: &std::path::Path) -> Self {
        Self {
            rgb: dir.join(&self.rgb),
            audio: dir.join(&self.audio),
            flow: dir.join(&self.flow),
            snippets_per_s: self.snippets_per_s,
        }
    }

    /// Reads the three files; lengths one snippet apart are trimmed, more is an error.
    pub fn read(&self) -> Result<Vec<SnippetFeatures>, CaptureError> {
        read_snippets(&self.rgb, &self.audio, &self.flow).map_err(|err| CaptureError::Malformed {
            source_name: self.describe(),
            detail: err.to_string(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "features rgb {} audio {} flow {}",
            self.rgb.display(),
            self.audio.display(),
            self.flow.display()
        )
    }
}

/// Plays the snippets of one video once, then ends.
pub struct FeatureReplay {
    config: FeatureFilesConfig,
    snippets: std::vec::IntoIter<SnippetFeatures>,
    next: u64,
    started: Option<std::time::Instant>,
}

impl FeatureReplay {
    pub fn new(config: FeatureFilesConfig) -> Self {
        Self {
            config,
            snippets: Vec::new().into_iter(),
            next: 0,
            started: None,
        }
    }
}

impl Source for FeatureReplay {
    fn start(&mut self) -> Result<(), CaptureError> {
        // A restart replays from the first snippet the stream has not had yet.
        let rows = self.config.read()?;
        let mut rows = rows.into_iter();
        for _ in 0..self.next {
            rows.next();
        }
        self.snippets = rows;
        self.started = Some(std::time::Instant::now());
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        let Some(snippet) = self.snippets.next() else {
            return Ok(None);
        };
        let index = self.next;
        self.next += 1;
        if let (Some(rate), Some(started)) = (self.config.snippets_per_s, self.started)
            && rate > 0.0
        {
            let due = Duration::from_secs_f64(index as f64 / f64::from(rate));
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
        let pts = SNIPPET * index as u32;
        Ok(Some(Sample::Features(FeatureRow {
            stamp: Stamp {
                pts,
                captured_at: SystemTime::now(),
                seq: index,
            },
            duration: SNIPPET,
            video: snippet.video,
            audio: snippet.audio,
            flow: snippet.flow,
        })))
    }

    fn stop(&mut self) {
        self.snippets = Vec::new().into_iter();
    }

    fn describe(&self) -> String {
        self.config.describe()
    }
}
