//! XD-Violence's pre-extracted feature lists, read as MAVD's loader reads them (papers.md
//! §2.1, §2.5).
//!
//! Three list files name `.npy` features, one path per line: RGB and flow with the same number
//! of crops per video on consecutive lines (`<name>__0.npy` … `<name>__4.npy` for XD-Violence's
//! five; vigil's edge data has one, `<name>__0.npy`), audio with one file per video
//! (`<name>__vggish.npy`), in the same video order. The crop count is the ratio of the list
//! lengths. Labels come from the names:
//! `_label_A` is normal, anything else violent. Each file holds `[snippets, features]` f32.
//!
//! Differing lengths between modalities crash the authors' test path. Here a difference of one
//! snippet (the usual off-by-one of flow, one frame pair short) is trimmed to the shortest,
//! as other XD-Violence code does, and logged; anything larger is an error naming the video.

use std::path::{Path, PathBuf};

pub use crate::models::violence::features::{FeatureFileError, Features, TRIMMABLE_DIFFERENCE};
use crate::models::violence::features::{common_length, read_features as read_feature_file};

/// Crops per video in XD-Violence's RGB and flow lists.
pub const XD_CROPS: usize = 5;
/// Snippets per training bag: longer videos are subsampled, shorter ones zero-padded.
pub const TRAIN_SNIPPETS: usize = 200;

/// Why a feature list or file could not be used. Each names the file, line or video.
#[derive(Debug, thiserror::Error)]
pub enum XdDataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the lists do not line up: {rgb} RGB lines, {flow} flow lines, {audio} audio lines \
         (expected RGB = flow = a whole number of crops × audio)"
    )]
    ListLengths {
        rgb: usize,
        flow: usize,
        audio: usize,
    },
    #[error("{list} line {line}: {path:?} is not `<name>__<crop>.npy` / `<name>__vggish.npy`")]
    BadName {
        list: PathBuf,
        line: usize,
        path: String,
    },
    #[error("{list} line {line}: expected video {expected:?} crop {crop}, found {found:?}")]
    Misaligned {
        list: PathBuf,
        line: usize,
        expected: String,
        crop: usize,
        found: String,
    },
    #[error(transparent)]
    File(#[from] FeatureFileError),
    #[error("{path}: shape {shape:?}, expected [snippets, {width}]")]
    Width {
        path: PathBuf,
        shape: Vec<usize>,
        width: usize,
    },
    #[error(
        "video {video}: modalities differ in length (RGB {rgb}, flow {flow}, audio {audio} \
         snippets); more than {TRIMMABLE_DIFFERENCE} apart is not trimmed"
    )]
    LengthsDiffer {
        video: String,
        rgb: usize,
        flow: usize,
        audio: usize,
    },
}

/// One video of a list: its name, label and feature files.
#[derive(Debug, Clone, PartialEq)]
pub struct XdVideo {
    pub name: String,
    pub violent: bool,
    /// One file per crop, in crop order; `flow` has as many.
    pub rgb: Vec<PathBuf>,
    pub flow: Vec<PathBuf>,
    pub audio: PathBuf,
}

/// One crop of a video: RGB, flow and the video's audio, equally long.
#[derive(Debug, Clone, PartialEq)]
pub struct CropFeatures {
    pub rgb: Features,
    pub flow: Features,
    pub audio: Features,
}

/// XD-Violence's naming: `_label_A` marks a normal video.
pub fn is_violent(name: &str) -> bool {
    !name.contains("_label_A")
}

fn read_list(path: &Path) -> Result<Vec<String>, XdDataError> {
    let text = std::fs::read_to_string(path).map_err(|source| XdDataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

/// `(name, suffix)` of `<dir>/<name>__<suffix>.npy`.
fn split_name(entry: &str) -> Option<(String, String)> {
    let file = Path::new(entry).file_name()?.to_str()?;
    let stem = file.strip_suffix(".npy")?;
    let (name, suffix) = stem.rsplit_once("__")?;
    (!name.is_empty()).then(|| (name.to_string(), suffix.to_string()))
}

/// Reads the three lists. Relative paths in them are taken from `root` (the authors' lists
/// start with `./XDData/…`, relative to their repository).
pub fn read_lists(
    rgb_list: &Path,
    flow_list: &Path,
    audio_list: &Path,
    root: &Path,
) -> Result<Vec<XdVideo>, XdDataError> {
    let (rgb, flow, audio) = (
        read_list(rgb_list)?,
        read_list(flow_list)?,
        read_list(audio_list)?,
    );
    if audio.is_empty() || rgb.len() != flow.len() || rgb.is_empty() || rgb.len() % audio.len() != 0
    {
        return Err(XdDataError::ListLengths {
            rgb: rgb.len(),
            flow: flow.len(),
            audio: audio.len(),
        });
    }
    let bad_name = |list: &Path, line: usize, path: &str| XdDataError::BadName {
        list: list.to_path_buf(),
        line: line + 1,
        path: path.to_string(),
    };
    let crop_count = rgb.len() / audio.len();
    let mut videos = Vec::with_capacity(audio.len());
    for (index, audio_entry) in audio.iter().enumerate() {
        let (name, suffix) =
            split_name(audio_entry).ok_or_else(|| bad_name(audio_list, index, audio_entry))?;
        if suffix != "vggish" {
            return Err(bad_name(audio_list, index, audio_entry));
        }
        let crops = |list: &Path, entries: &[String]| -> Result<Vec<PathBuf>, XdDataError> {
            let mut paths = Vec::with_capacity(crop_count);
            for crop in 0..crop_count {
                let line = index * crop_count + crop;
                let entry = &entries[line];
                let (found, suffix) =
                    split_name(entry).ok_or_else(|| bad_name(list, line, entry))?;
                if found != name || suffix != crop.to_string() {
                    return Err(XdDataError::Misaligned {
                        list: list.to_path_buf(),
                        line: line + 1,
                        expected: name.clone(),
                        crop,
                        found: format!("{found}__{suffix}"),
                    });
                }
                paths.push(root.join(entry));
            }
            Ok(paths)
        };
        videos.push(XdVideo {
            violent: is_violent(&name),
            rgb: crops(rgb_list, &rgb)?,
            flow: crops(flow_list, &flow)?,
            audio: root.join(audio_entry),
            name,
        });
    }
    Ok(videos)
}

/// Reads one `[snippets, width]` f32 file; `width` checks the feature width when given.
pub fn read_features(path: &Path, width: Option<usize>) -> Result<Features, XdDataError> {
    let features = read_feature_file(path)?;
    match width {
        Some(width) if width != features.width => Err(XdDataError::Width {
            path: path.to_path_buf(),
            shape: vec![features.snippets, features.width],
            width,
        }),
        _ => Ok(features),
    }
}

/// Input widths of a model for these features: `[rgb, audio, flow]`.
pub type Widths = [Option<usize>; 3];

impl XdVideo {
    /// How many crops the video has (XD-Violence: 5).
    pub fn crops(&self) -> usize {
        self.rgb.len()
    }

    /// One crop with its audio, lengths reconciled (see the module documentation).
    pub fn crop(&self, crop: usize, widths: Widths) -> Result<CropFeatures, XdDataError> {
        let crop = crop % self.crops().max(1);
        let rgb = read_features(&self.rgb[crop], widths[0])?;
        let audio = read_features(&self.audio, widths[1])?;
        let flow = read_features(&self.flow[crop], widths[2])?;
        let lengths = [rgb.snippets, flow.snippets, audio.snippets];
        let shortest = common_length(lengths).ok_or_else(|| XdDataError::LengthsDiffer {
            video: self.name.clone(),
            rgb: rgb.snippets,
            flow: flow.snippets,
            audio: audio.snippets,
        })?;
        if lengths.iter().any(|&n| n != shortest) {
            log::debug!(
                "{}: trimming to {shortest} snippets (RGB {}, flow {}, audio {})",
                self.name,
                rgb.snippets,
                flow.snippets,
                audio.snippets
            );
        }
        Ok(CropFeatures {
            rgb: rgb.truncated(shortest),
            flow: flow.truncated(shortest),
            audio: audio.truncated(shortest),
        })
    }
}

/// The training form of one modality: exactly `length` rows. Longer inputs keep the rows at
/// `linspace(0, n − 1, length)` (truncated to integers, as NumPy's integer cast does);
/// shorter ones are zero-padded at the end.
pub fn fit_length(features: &Features, length: usize) -> Vec<f32> {
    let (n, width) = (features.snippets, features.width);
    let mut out = vec![0.0; length * width];
    if n > length {
        for (row, chunk) in out.chunks_mut(width).enumerate() {
            let source = if length > 1 {
                (row as f64 * (n - 1) as f64 / (length - 1) as f64) as usize
            } else {
                0
            };
            chunk.copy_from_slice(&features.values[source * width..(source + 1) * width]);
        }
    } else {
        out[..n * width].copy_from_slice(&features.values);
    }
    out
}

/// Valid length of a fitted bag: the number of RGB rows with any non-zero value (the
/// authors' rule, which also counts an all-zero snippet inside a video as padding).
pub fn valid_length(rgb: &[f32], width: usize) -> usize {
    rgb.chunks(width.max(1))
        .filter(|row| row.iter().any(|v| *v != 0.0))
        .count()
}
