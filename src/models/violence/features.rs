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

fn read(path: &Path) -> Result<(usize, usize, Vec<f32>), FeatureFileError> {
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
    Ok((snippets, width, array.data))
}

/// The snippets of one video from its RGB, audio and flow feature files.
pub fn read_snippets(
    rgb: &Path,
    audio: &Path,
    flow: &Path,
) -> Result<Vec<SnippetFeatures>, FeatureFileError> {
    let (rgb, audio, flow) = (read(rgb)?, read(audio)?, read(flow)?);
    let lengths = [rgb.0, audio.0, flow.0];
    let shortest = lengths.iter().copied().min().unwrap_or(0);
    let longest = lengths.iter().copied().max().unwrap_or(0);
    if longest - shortest > TRIMMABLE_DIFFERENCE {
        return Err(FeatureFileError::Lengths {
            rgb: rgb.0,
            audio: audio.0,
            flow: flow.0,
        });
    }
    let row = |(_, width, values): &(usize, usize, Vec<f32>), t: usize| {
        values[t * width..(t + 1) * width].to_vec()
    };
    Ok((0..shortest)
        .map(|t| SnippetFeatures {
            video: row(&rgb, t),
            audio: row(&audio, t),
            flow: row(&flow, t),
        })
        .collect())
}
