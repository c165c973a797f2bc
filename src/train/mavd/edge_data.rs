//! MAVD-edge's training and test splits: clips staged from real material
//! ([`crate::models::violence::staging`]), cut into snippets and run through the runtime's own
//! extractors, written in XD-Violence's list layout with one crop per video, so that `mavd
//! train` and `mavd eval` read them as they read XD-Violence.
//!
//! `train` and `validation` are staged from the training material (different clips), `test`
//! from the held-out material. Each split folder holds `RGB/`, `Flow/`, `Audio/`, the three lists, `gt.npy` (16 frame
//! labels per snippet, videos in list order) and `clips.json` (each clip's footage and event).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::config::Config;
use serde::Serialize;

use crate::detector::{Manifest, Plan};
use crate::io::npy::write_npy;
use crate::models::violence::extract::SnippetExtractor;
use crate::models::violence::staging::{
    ClipRecipe, Material, MaterialPaths, Split, snippets_of, stage_clip,
};
use crate::rng::SplitMix64;
use crate::train::TrainError;

/// How many clips of what length.
#[derive(Config, Debug)]
pub struct EdgeDataConfig {
    #[config(default = 96)]
    pub train_clips: usize,
    /// Staged from training material with their own seeds: what checkpoints are chosen on, so
    /// that the test split only ever measures.
    #[config(default = 32)]
    pub validation_clips: usize,
    #[config(default = 32)]
    pub test_clips: usize,
    /// 8 s = 12 snippets.
    #[config(default = 8.0)]
    pub clip_seconds: f32,
    /// Seeds every clip (every other clip is violent).
    #[config(default = 7)]
    pub seed: u64,
    /// Clips extracted at once (one extractor each).
    #[config(default = 2)]
    pub threads: usize,
}

/// One written clip, for `clips.json` and the card.
#[derive(Debug, Clone, Serialize)]
pub struct ClipRecord {
    pub name: String,
    pub footage: String,
    pub event_s: Option<(f64, f64)>,
    pub snippets: usize,
    pub violent_snippets: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitSummary {
    pub folder: PathBuf,
    pub clips: usize,
    pub violent_clips: usize,
    pub snippets: usize,
    pub violent_frames: usize,
    pub frames: usize,
}

fn config_error(err: impl std::fmt::Display) -> TrainError {
    TrainError::Config(err.to_string())
}

fn clip_name(split: &str, index: usize, violent: bool) -> String {
    // XD-Violence's naming: `_label_A` is normal, `_label_B1…` a fight.
    let label = if violent { "B1-0-0" } else { "A" };
    format!("edge-{split}-{index:04}_label_{label}")
}

/// Stages, extracts and writes one split of `clips` clips; `purpose` seeds its clips apart from
/// other splits'.
pub fn write_split(
    material: &Material,
    clips: usize,
    purpose: u64,
    config: &EdgeDataConfig,
    rgb_model: &Path,
    yamnet: &Plan,
    out: &Path,
) -> Result<SplitSummary, TrainError> {
    for sub in ["RGB", "Flow", "Audio"] {
        std::fs::create_dir_all(out.join(sub)).map_err(config_error)?;
    }
    let next = AtomicUsize::new(0);
    let written: Mutex<Vec<(usize, ClipRecord, Vec<bool>)>> = Mutex::new(Vec::new());
    let folder = out
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("clip")
        .to_string();
    std::thread::scope(|scope| -> Result<(), TrainError> {
        let workers: Vec<_> = (0..config.threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<(), TrainError> {
                    let mut extractor =
                        SnippetExtractor::new(rgb_model, yamnet).map_err(config_error)?;
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= clips {
                            return Ok(());
                        }
                        // Each clip its own generator: the set does not depend on threads.
                        let mut rng =
                            SplitMix64::derive(config.seed, purpose * 1_000_000 + index as u64);
                        let violent = index % 2 == 1;
                        let recipe = ClipRecipe {
                            seconds: config.clip_seconds,
                            event: None,
                            violent,
                        };
                        let clip = stage_clip(material, &recipe, &mut rng).map_err(config_error)?;
                        let name = clip_name(&folder, index, violent);
                        let snippets = snippets_of(&clip).map_err(config_error)?;
                        let (mut rgb, mut audio, mut flow) = (Vec::new(), Vec::new(), Vec::new());
                        for snippet in &snippets {
                            let features = extractor.extract(snippet).map_err(config_error)?;
                            rgb.extend(features.features.video);
                            audio.extend(features.features.audio);
                            flow.extend(features.features.flow);
                        }
                        let n = snippets.len();
                        let width = |values: &[f32]| values.len() / n.max(1);
                        let write = |path: PathBuf, values: &[f32]| {
                            write_npy(&path, &[n, width(values)], values).map_err(config_error)
                        };
                        write(out.join(format!("RGB/{name}__0.npy")), &rgb)?;
                        write(out.join(format!("Flow/{name}__0.npy")), &flow)?;
                        write(out.join(format!("Audio/{name}__vggish.npy")), &audio)?;
                        // Labels of the frames the snippets hold (16 each, from the start).
                        let labels: Vec<bool> =
                            clip.frame_labels().into_iter().take(n * 16).collect();
                        let record = ClipRecord {
                            name,
                            footage: clip.footage.clone(),
                            event_s: clip.event,
                            snippets: n,
                            violent_snippets: labels
                                .chunks(16)
                                .filter(|c| c.contains(&true))
                                .count(),
                        };
                        log::info!("{}: {n} snippets", record.name);
                        written
                            .lock()
                            .map_err(|_| config_error("a writer thread panicked"))?
                            .push((index, record, labels));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| config_error("an extractor thread panicked"))??;
        }
        Ok(())
    })?;
    let mut written = written
        .into_inner()
        .map_err(|_| config_error("a writer thread panicked"))?;
    written.sort_by_key(|(index, _, _)| *index);
    let (mut rgb_list, mut flow_list, mut audio_list) =
        (String::new(), String::new(), String::new());
    let mut gt = Vec::new();
    let mut records = Vec::new();
    for (_, record, labels) in written {
        rgb_list += &format!("RGB/{}__0.npy\n", record.name);
        flow_list += &format!("Flow/{}__0.npy\n", record.name);
        audio_list += &format!("Audio/{}__vggish.npy\n", record.name);
        gt.extend(labels.iter().map(|&l| f32::from(u8::from(l))));
        records.push(record);
    }
    for (file, text) in [
        ("rgb.list", rgb_list),
        ("flow.list", flow_list),
        ("audio.list", audio_list),
    ] {
        std::fs::write(out.join(file), text).map_err(config_error)?;
    }
    write_npy(out.join("gt.npy"), &[gt.len()], &gt).map_err(config_error)?;
    let json = serde_json::to_string_pretty(&records).map_err(config_error)?;
    std::fs::write(out.join("clips.json"), json).map_err(config_error)?;
    Ok(SplitSummary {
        folder: out.to_path_buf(),
        clips: records.len(),
        violent_clips: records.iter().filter(|r| r.event_s.is_some()).count(),
        snippets: records.iter().map(|r| r.snippets).sum(),
        violent_frames: gt.iter().filter(|&&v| v > 0.0).count(),
        frames: gt.len(),
    })
}

/// Writes `out/train`, `out/validation` and `out/test`.
pub fn make_edge_data(
    paths: &MaterialPaths,
    manifest: &Path,
    rgb_model: &Path,
    out: &Path,
    config: &EdgeDataConfig,
) -> Result<Vec<SplitSummary>, TrainError> {
    let manifest = Manifest::load(manifest).map_err(config_error)?;
    let yamnet = Plan::load(&manifest, "yamnet").map_err(config_error)?;
    let training = Material::load(paths, Split::Train).map_err(config_error)?;
    let held_out = Material::load(paths, Split::Test).map_err(config_error)?;
    [
        (&training, config.train_clips, 1, "train"),
        (&training, config.validation_clips, 3, "validation"),
        (&held_out, config.test_clips, 2, "test"),
    ]
    .into_iter()
    .map(|(material, clips, purpose, folder)| {
        write_split(
            material,
            clips,
            purpose,
            config,
            rgb_model,
            &yamnet,
            &out.join(folder),
        )
    })
    .collect()
}
