//! Pre-extracted per-snippet features from `.npy` files (`[snippets, width]` f32 per
//! modality, XD-Violence's layout), for scoring them with a MAVD window graph.

use std::path::Path;

use super::window::SnippetFeatures;
use crate::io::npy::read_npy;

/// The largest length difference between modalities that is trimmed (to the shortest, as
/// XD-Violence code does for flow one snippet short) rather than refused.
pub const TRIMMABLE_DIFFERENCE: usize = 1;

/// Why feature files could not be read as snippets.
#[derive(Debug, thiserror::Error)]
pub enum FeatureFileError {
    #[error(transparent)]
    Npy(#[from] crate::io::npy::NpyError),
    #[error("{path}: shape {shape:?}, expected [snippets, features] with both above 0")]
    Shape { path: String, shape: Vec<usize> },
    #[error("{path}: a value at snippet {snippet} is not finite")]
    NotFinite { path: String, snippet: usize },
    #[error(
        "the modalities differ in length (RGB {rgb}, audio {audio}, flow {flow} snippets); \
         more than {TRIMMABLE_DIFFERENCE} apart is not trimmed"
    )]
    Lengths {
        rgb: usize,
        audio: usize,
        flow: usize,
    },
}

/// `[snippets, width]` features of one file, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub snippets: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

impl Features {
    /// The first `snippets` rows.
    pub fn truncated(mut self, snippets: usize) -> Self {
        self.values.truncate(snippets * self.width);
        self.snippets = snippets;
        self
    }

    fn row(&self, snippet: usize) -> Vec<f32> {
        self.values[snippet * self.width..(snippet + 1) * self.width].to_vec()
    }
}

/// Reads one `[snippets, width]` f32 file with at least one snippet, every value finite.
pub fn read_features(path: &Path) -> Result<Features, FeatureFileError> {
    let array = read_npy::<f32>(path)?;
    let shown = path.display().to_string();
    let &[snippets, width] = array.shape.as_slice() else {
        return Err(FeatureFileError::Shape {
            path: shown,
            shape: array.shape,
        });
    };
    if snippets == 0 || width == 0 {
        return Err(FeatureFileError::Shape {
            path: shown,
            shape: array.shape,
        });
    }
    if let Some(at) = array.data.iter().position(|v| !v.is_finite()) {
        return Err(FeatureFileError::NotFinite {
            path: shown,
            snippet: at / width,
        });
    }
    Ok(Features {
        snippets,
        width,
        values: array.data,
    })
}

/// The length the three modalities are cut to: the shortest, when they are at most
/// [`TRIMMABLE_DIFFERENCE`] apart; `None` when they differ more.
pub fn common_length(lengths: [usize; 3]) -> Option<usize> {
    let shortest = lengths.iter().copied().min().unwrap_or(0);
    let longest = lengths.iter().copied().max().unwrap_or(0);
    (longest - shortest <= TRIMMABLE_DIFFERENCE).then_some(shortest)
}

/// The snippets of one video from its RGB, audio and flow feature files.
pub fn read_snippets(
    rgb: &Path,
    audio: &Path,
    flow: &Path,
) -> Result<Vec<SnippetFeatures>, FeatureFileError> {
    let (rgb, audio, flow) = (
        read_features(rgb)?,
        read_features(audio)?,
        read_features(flow)?,
    );
    let length = common_length([rgb.snippets, audio.snippets, flow.snippets]).ok_or(
        FeatureFileError::Lengths {
            rgb: rgb.snippets,
            audio: audio.snippets,
            flow: flow.snippets,
        },
    )?;
    Ok((0..length)
        .map(|t| SnippetFeatures {
            video: rgb.row(t),
            audio: audio.row(t),
            flow: flow.row(t),
        })
        .collect())
}
