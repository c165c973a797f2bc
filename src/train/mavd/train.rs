//! Training and evaluating MAVD as the authors' `train.py` / `test.py` do (papers.md §2.4,
//! §2.6), on XD-Violence-layout feature lists.
//!
//! A split is a folder with `rgb.list`, `flow.list` and `audio.list` (the authors' list files,
//! renamed) and, for a test split, `gt.npy`: the frame labels of all its videos concatenated
//! in list order, 16 per snippet.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, decay::WeightDecayConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{XdVideo, fit_length, read_lists, valid_length};
use super::losses::{
    bag_scores, binary_cross_entropy, consistency, cosine_distance, match_channels, sparsify,
    triplet, zero_padding,
};
use super::model::{Mavd, MavdConfig};
use crate::eval::xd_violence_ap;
use crate::io::npy::read_npy;
use crate::rng::SplitMix64;
use crate::train::TrainError;
use crate::train::backend::{BackendKind, inference_device, training_device};
use crate::train::epoch::{MetricsLog, save, scalar};
use crate::train::run::RunDir;

/// The checkpoint a run keeps: the weights with the best test AP (the authors' selection).
pub const CHECKPOINT: &str = "mavd.bpk";
/// The run's configuration.
pub const CONFIG: &str = "config.json";

/// Hyper-parameters of a MAVD run; the defaults are the paper's.
#[derive(Config, Debug)]
pub struct MavdTrainConfig {
    pub model: MavdConfig,
    #[config(default = 1e-4)]
    pub learning_rate: f64,
    #[config(default = 0.9)]
    pub beta_1: f32,
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// PyTorch's Adam epsilon (burn's default is 1e-5).
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// Adam's L2 weight decay.
    #[config(default = 5e-4)]
    pub weight_decay: f32,
    /// Crop-level bags per step.
    #[config(default = 128)]
    pub batch_size: usize,
    #[config(default = 1000)]
    pub iterations: usize,
    /// Steps between test evaluations.
    #[config(default = 10)]
    pub eval_every: usize,
    /// λ1, λ2, λ3 of L = L_U + λ1·L_MA + λ2·BCE(fused) + λ3·L_trip.
    #[config(default = 10.0)]
    pub alignment_weight: f32,
    #[config(default = 10.0)]
    pub fusion_weight: f32,
    #[config(default = 0.001)]
    pub triplet_weight: f32,
    /// Weight of the projected modalities' own bag losses inside L_MA.
    #[config(default = 0.01)]
    pub projected_bag_weight: f32,
    /// Snippets per training bag (the authors' 200).
    #[config(default = "super::data::TRAIN_SNIPPETS")]
    pub train_snippets: usize,
    #[config(default = 500)]
    pub seed: u64,
}

/// What a run folder records about its inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MavdRunConfig {
    pub family: String,
    /// Where the weights came from: a training split, or the authors' files.
    pub source: String,
    pub backend: BackendKind,
    pub train: MavdTrainConfig,
}

/// One split's lists, read from its folder.
pub fn read_split(folder: &Path, root: Option<&Path>) -> Result<Vec<XdVideo>, TrainError> {
    read_lists(
        &folder.join("rgb.list"),
        &folder.join("flow.list"),
        &folder.join("audio.list"),
        root.unwrap_or(folder),
    )
    .map_err(|err| TrainError::Config(err.to_string()))
}

/// Feature widths `[rgb, audio, flow]` of a split, from its first video.
pub fn feature_widths(videos: &[XdVideo]) -> Result<[usize; 3], TrainError> {
    let first = videos
        .first()
        .ok_or_else(|| TrainError::Config("the split lists no video".into()))?;
    let crop = first
        .crop(0, [None; 3])
        .map_err(|err| TrainError::Config(err.to_string()))?;
    Ok([crop.rgb.width, crop.audio.width, crop.flow.width])
}

fn widths(config: &MavdConfig) -> super::data::Widths {
    [
        Some(config.video.input),
        Some(config.audio.input),
        Some(config.flow.input),
    ]
}

/// A training batch of crop-level bags, fitted to the longest valid length among them.
struct Batch {
    rgb: Tensor<3>,
    audio: Tensor<3>,
    flow: Tensor<3>,
    valid: Vec<usize>,
    violent: Vec<bool>,
}

fn load_batch(
    videos: &[XdVideo],
    samples: &[(usize, usize)],
    config: &MavdTrainConfig,
    device: &Device,
) -> Result<Batch, TrainError> {
    let length = config.train_snippets;
    let model = &config.model;
    let (mut rgb, mut audio, mut flow) = (Vec::new(), Vec::new(), Vec::new());
    let (mut valid, mut violent) = (Vec::new(), Vec::new());
    for &(video, crop) in samples {
        let features = videos[video]
            .crop(crop, widths(model))
            .map_err(|err| TrainError::Config(err.to_string()))?;
        let fitted = fit_length(&features.rgb, length);
        valid.push(valid_length(&fitted, model.video.input));
        rgb.push(fitted);
        audio.push(fit_length(&features.audio, length));
        flow.push(fit_length(&features.flow, length));
        violent.push(videos[video].violent);
    }
    // The authors truncate the batch to its longest valid length.
    let longest = valid.iter().copied().max().unwrap_or(1).max(1);
    let stack = |rows: Vec<Vec<f32>>, width: usize| {
        let mut values = Vec::with_capacity(rows.len() * longest * width);
        for row in &rows {
            values.extend_from_slice(&row[..longest * width]);
        }
        Tensor::<3>::from_data(
            TensorData::new(values, [rows.len(), longest, width]),
            device,
        )
    };
    Ok(Batch {
        rgb: stack(rgb, model.video.input),
        audio: stack(audio, model.audio.input),
        flow: stack(flow, model.flow.input),
        valid,
        violent,
    })
}

/// The loss of one step and its parts (for the log).
struct StepLoss {
    total: Tensor<1>,
    parts: [f64; 4],
}

fn host(tensor: Tensor<3>) -> Result<Vec<f32>, TrainError> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// The authors' step: unimodal MIL losses on each encoder; then, on detached encoder
/// outputs, the projections, the sparse alignment, the fusion and the triplet term.
fn step_loss(mavd: &Mavd, batch: Batch, config: &MavdTrainConfig) -> Result<StepLoss, TrainError> {
    let device = batch.rgb.device();
    let labels: Vec<f32> = batch
        .violent
        .iter()
        .map(|&v| f32::from(u8::from(v)))
        .collect();
    let labels = Tensor::<1>::from_data(TensorData::new(labels, [batch.valid.len()]), &device);
    let bce =
        |scores: Tensor<2>| binary_cross_entropy(bag_scores(scores, &batch.valid), labels.clone());

    let video = mavd.video.forward(batch.rgb);
    let audio = mavd.audio.forward(batch.audio);
    let flow = mavd.flow.forward(batch.flow);
    let video_scores = mavd.video.mil.forward(video.clone());
    let unimodal = bce(video_scores.clone())
        + bce(mavd.audio.mil.forward(audio.clone()))
        + bce(mavd.flow.mil.forward(flow.clone()));

    // Gradient routing: each encoder learns from its own MIL loss only.
    let (video, audio, flow) = (video.detach(), audio.detach(), flow.detach());
    let video_scores = zero_padding(video_scores.detach(), &batch.valid);
    let projected_audio = mavd.audio_projection.forward(audio);
    let projected_flow = mavd.flow_projection.forward(flow);
    let projected_audio_scores = mavd.audio.mil.forward(projected_audio.clone());
    let projected_flow_scores = mavd.flow.mil.forward(projected_flow.clone());

    let [batch_size, _, video_width] = video.dims();
    let video_host = host(video.clone())?;
    let sparse = |other: &Tensor<3>| -> Result<Tensor<3>, TrainError> {
        let [_, _, width] = other.dims();
        let ext = match_channels(
            &video_host,
            video_width,
            &host(other.clone().detach())?,
            width,
        );
        Ok(sparsify(other.clone(), &ext))
    };
    let (sparse_audio, sparse_flow) = (sparse(&projected_audio)?, sparse(&projected_flow)?);
    let cosine = (cosine_distance(video.clone(), sparse_audio.clone())
        + cosine_distance(video.clone(), sparse_flow.clone())
        + cosine_distance(sparse_audio, sparse_flow))
    .div_scalar(batch_size as f32);
    let audio_scores = zero_padding(projected_audio_scores.clone(), &batch.valid);
    let flow_scores = zero_padding(projected_flow_scores.clone(), &batch.valid);
    let scores_agree = consistency(video_scores.clone(), audio_scores.clone())
        + consistency(video_scores, flow_scores.clone())
        + consistency(audio_scores, flow_scores);
    let projected_bags = (bce(projected_audio_scores) + bce(projected_flow_scores))
        .mul_scalar(config.projected_bag_weight);
    let alignment = cosine + scores_agree + projected_bags;

    let fused_input = Tensor::cat(vec![video, projected_audio, projected_flow], 2);
    let fused_features = mavd.fusion.features(fused_input);
    let fused_scores = mavd.fusion.mil.forward(fused_features.clone());
    let fusion = bce(fused_scores.clone());
    let triplet_term = triplet(
        fused_features,
        fused_scores.detach(),
        &batch.valid,
        &batch.violent,
    );

    let mut total = unimodal.clone()
        + alignment.clone().mul_scalar(config.alignment_weight)
        + fusion.clone().mul_scalar(config.fusion_weight);
    let mut triplet_value = 0.0;
    if let Some(term) = triplet_term {
        triplet_value = scalar(&term)?;
        total = total + term.mul_scalar(config.triplet_weight);
    }
    Ok(StepLoss {
        total,
        parts: [
            scalar(&unimodal)?,
            scalar(&alignment)?,
            scalar(&fusion)?,
            triplet_value,
        ],
    })
}

/// Fused snippet scores of one test video: its crops (audio shared) through the model,
/// averaged over the crops, as `test.py` does.
pub fn score_video(mavd: &Mavd, video: &XdVideo, device: &Device) -> Result<Vec<f32>, TrainError> {
    let config_widths = [
        mavd.video.embedding.weight.dims()[1],
        mavd.audio.embedding.weight.dims()[1],
        mavd.flow.embedding.weight.dims()[1],
    ];
    let widths = config_widths.map(Some);
    let crops = (0..video.crops())
        .map(|crop| video.crop(crop, widths))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TrainError::Config(err.to_string()))?;
    let snippets = crops.iter().map(|c| c.rgb.snippets).min().unwrap_or(0);
    let stack = |pick: &dyn Fn(&super::data::CropFeatures) -> &[f32], width: usize| {
        let mut values = Vec::with_capacity(crops.len() * snippets * width);
        for crop in &crops {
            values.extend_from_slice(&pick(crop)[..snippets * width]);
        }
        Tensor::<3>::from_data(
            TensorData::new(values, [crops.len(), snippets, width]),
            device,
        )
    };
    let scores = mavd.forward(
        stack(&|c| &c.rgb.values, config_widths[0]),
        stack(&|c| &c.audio.values, config_widths[1]),
        stack(&|c| &c.flow.values, config_widths[2]),
    );
    scores
        .fused
        .mean_dim(0)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// The result of scoring a test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Frame-level AP as XD-Violence's code computes it.
    pub ap: f64,
    pub videos: usize,
    pub snippets: usize,
}

/// Frame labels of a test split (`gt.npy`, any numeric type read as f32, non-zero = violent).
pub fn read_ground_truth(folder: &Path) -> Result<Vec<bool>, TrainError> {
    let path = folder.join("gt.npy");
    let array = read_npy::<f32>(&path).map_err(|err| TrainError::Config(err.to_string()))?;
    Ok(array.data.iter().map(|v| *v != 0.0).collect())
}

/// Scores every video of the split and computes the frame-level AP against `labels`.
pub fn evaluate(
    mavd: &Mavd,
    videos: &[XdVideo],
    labels: &[bool],
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let mut scores = Vec::new();
    for video in videos {
        scores.extend(score_video(mavd, video, device)?.into_iter().map(f64::from));
    }
    let ap = xd_violence_ap(&scores, labels).map_err(|err| TrainError::Config(err.to_string()))?;
    Ok(Evaluation {
        ap,
        videos: videos.len(),
        snippets: scores.len(),
    })
}

/// What a training run reports at its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub best_ap: f64,
    pub best_iteration: usize,
    pub iterations: usize,
    pub seconds: f64,
}

/// Trains on the `train` split, evaluating on `test` every `eval_every` steps and keeping the
/// best weights in `out/mavd.bpk`.
pub fn train(
    train_split: &Path,
    test_split: &Path,
    root: Option<&Path>,
    out: &Path,
    config: MavdTrainConfig,
    backend: BackendKind,
) -> Result<TrainSummary, TrainError> {
    let train_videos = read_split(train_split, root)?;
    let test_videos = read_split(test_split, root)?;
    let test_labels = read_ground_truth(test_split)?;
    let found = feature_widths(&train_videos)?;
    let model = &config.model;
    if found != [model.video.input, model.audio.input, model.flow.input] {
        return Err(TrainError::Config(format!(
            "the features are [rgb, audio, flow] = {found:?} wide, the model takes [{}, {}, {}]",
            model.video.input, model.audio.input, model.flow.input
        )));
    }
    if config.batch_size == 0 || config.iterations == 0 || config.eval_every == 0 {
        return Err(TrainError::Config(
            "batch size, iterations and eval_every must be positive".into(),
        ));
    }
    let device = training_device(backend)?;
    let eval_device = inference_device(backend)?;
    device.seed(config.seed);
    let run = RunDir::create(out)?;
    run.write_json(
        CONFIG,
        &MavdRunConfig {
            family: "mavd".into(),
            source: format!("trained on {}", train_split.display()),
            backend,
            train: config.clone(),
        },
    )?;
    let mut mavd = config.model.init(&device);
    let mut optimizer = AdamConfig::new()
        .with_beta_1(config.beta_1)
        .with_beta_2(config.beta_2)
        .with_epsilon(config.epsilon)
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay)))
        .init();
    let mut log = MetricsLog::create(
        &run,
        "metrics.csv",
        "iteration,loss,unimodal,alignment,fusion,triplet,test_ap",
    )?;
    let samples: Vec<(usize, usize)> = (0..train_videos.len())
        .flat_map(|video| (0..train_videos[video].crops()).map(move |crop| (video, crop)))
        .collect();
    let mut rng = SplitMix64::new(config.seed);
    let mut order = Vec::new();
    let (mut best_ap, mut best_iteration) = (f64::NEG_INFINITY, 0);
    let started = Instant::now();
    for iteration in 1..=config.iterations {
        // Shuffled passes over the crop bags, as the authors' loader draws them.
        let mut batch = Vec::with_capacity(config.batch_size);
        while batch.len() < config.batch_size.min(samples.len()) {
            if order.is_empty() {
                order = samples.clone();
                rng.shuffle(&mut order);
            }
            batch.extend(order.pop());
        }
        let loss = step_loss(
            &mavd,
            load_batch(&train_videos, &batch, &config, &device)?,
            &config,
        )?;
        let total = scalar(&loss.total)?;
        if !total.is_finite() {
            return Err(TrainError::Diverged {
                epoch: iteration,
                loss: total,
            });
        }
        let grads = GradientsParams::from_grads(loss.total.backward(), &mavd);
        mavd = optimizer.step(config.learning_rate, mavd, grads);
        let mut ap_text = String::new();
        if iteration % config.eval_every == 0 || iteration == config.iterations {
            let evaluation = evaluate(&mavd.valid(), &test_videos, &test_labels, &eval_device)?;
            ap_text = format!("{:.6}", evaluation.ap);
            log::info!(
                "iteration {iteration}/{}: loss {total:.4}, test AP {:.4}",
                config.iterations,
                evaluation.ap
            );
            if evaluation.ap > best_ap {
                (best_ap, best_iteration) = (evaluation.ap, iteration);
                save(&mavd.valid(), &run.file(CHECKPOINT))?;
            }
        }
        let [unimodal, alignment, fusion, triplet] = loss.parts;
        log.row(&format!(
            "{iteration},{total},{unimodal},{alignment},{fusion},{triplet},{ap_text}"
        ))?;
    }
    let summary = TrainSummary {
        best_ap,
        best_iteration,
        iterations: config.iterations,
        seconds: started.elapsed().as_secs_f64(),
    };
    run.write_json("summary.json", &summary)?;
    Ok(summary)
}

/// A run folder's model and configuration.
pub fn load_run(run: &Path, device: &Device) -> Result<(Mavd, MavdRunConfig), TrainError> {
    let run = RunDir::open(run)?;
    let config: MavdRunConfig = run.read_json(CONFIG)?;
    let path: PathBuf = run.file(CHECKPOINT);
    let mavd = config
        .train
        .model
        .init(device)
        .try_load_file(&path)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    Ok((mavd, config))
}

/// Writes the authors' published heads into a run folder, as a run's best checkpoint, so that
/// `eval` and `export` treat them like trained weights.
pub fn import_authors(
    weights: &Path,
    out: &Path,
) -> Result<Vec<super::weights::FileReport>, TrainError> {
    let device = Device::flex();
    let model = MavdConfig::paper();
    let (mavd, reports) = super::weights::load_authors(weights, &model, &device)?;
    let run = RunDir::create(out)?;
    run.write_json(
        CONFIG,
        &MavdRunConfig {
            family: "mavd".into(),
            source: format!("the authors' ap86.07 heads from {}", weights.display()),
            backend: BackendKind::Flex,
            train: MavdTrainConfig::new(model),
        },
    )?;
    save(&mavd, &run.file(CHECKPOINT))?;
    Ok(reports)
}
