//! Training ToyNet: the loop every family's trainer follows (seeded shuffles, Adam, a progress
//! bar, a checkpoint per epoch, validation AUROC, metrics CSV and plots in the run folder).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use super::data::{ToySplit, read_split};
use super::model::{ToyNet, ToyNetConfig};
use crate::train::TrainError;
use crate::train::backend::{BackendKind, training_device};
use crate::train::plot::{Series, line_chart};
use crate::train::rng::SplitMix64;
use crate::train::run::{CheckpointState, EpochMetrics, RunDir};

/// Hyper-parameters of a toy training run.
#[derive(Config, Debug)]
pub struct ToyTrainConfig {
    pub model: ToyNetConfig,
    #[config(default = 6)]
    pub epochs: usize,
    #[config(default = 64)]
    pub batch_size: usize,
    #[config(default = 2e-3)]
    pub learning_rate: f64,
    #[config(default = 42)]
    pub seed: u64,
}

/// What `config.json` holds: enough to resume, export and evaluate the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToyRunConfig {
    pub family: String,
    pub data: PathBuf,
    pub backend: BackendKind,
    pub train: ToyTrainConfig,
}

/// The outcome of a training run.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run: PathBuf,
    pub epochs_done: usize,
    pub val_auroc: f64,
    pub samples_per_second: f64,
}

/// Starts a new run in `run_path`.
pub fn train(
    data: &Path,
    run_path: &Path,
    backend: BackendKind,
    config: ToyTrainConfig,
) -> Result<TrainSummary, TrainError> {
    // Read the data before creating anything: a bad folder leaves no empty run behind.
    let train_split = read_split(data, "train")?;
    let val_split = read_split(data, "val")?;
    check_patch(&config, &train_split, data)?;
    // Likewise a backend that cannot start (no CUDA driver) fails before the folder exists.
    crate::train::backend::inference_device(backend)?;
    let run = RunDir::create(run_path)?;
    let run_config = ToyRunConfig {
        family: "toy".into(),
        data: data.to_path_buf(),
        backend,
        train: config,
    };
    run.write_json("config.json", &run_config)?;
    fit(&run, &run_config, &train_split, &val_split, None)
}

/// Continues the run in `run_path` from its last checkpoint, on `backend` if given, up to
/// `epochs` in total if given (to extend a finished run).
pub fn resume(
    run_path: &Path,
    backend: Option<BackendKind>,
    epochs: Option<usize>,
) -> Result<TrainSummary, TrainError> {
    let run = RunDir::open(run_path)?;
    let mut run_config: ToyRunConfig = run.read_json("config.json")?;
    if let Some(backend) = backend {
        run_config.backend = backend;
    }
    if let Some(epochs) = epochs {
        run_config.train.epochs = epochs;
        run.write_json("config.json", &run_config)?;
    }
    let train_split = read_split(&run_config.data, "train")?;
    let val_split = read_split(&run_config.data, "val")?;
    check_patch(&run_config.train, &train_split, &run_config.data)?;
    let state = run.checkpoint_state()?;
    fit(&run, &run_config, &train_split, &val_split, state)
}

fn check_patch(config: &ToyTrainConfig, split: &ToySplit, data: &Path) -> Result<(), TrainError> {
    if split.patch != config.model.patch {
        return Err(TrainError::Config(format!(
            "{}: patches are {}x{} but the model expects {}x{}",
            data.join("train/images.npy").display(),
            split.patch,
            split.patch,
            config.model.patch,
            config.model.patch
        )));
    }
    Ok(())
}

fn fit(
    run: &RunDir,
    run_config: &ToyRunConfig,
    train_split: &ToySplit,
    val_split: &ToySplit,
    resume_from: Option<CheckpointState>,
) -> Result<TrainSummary, TrainError> {
    let config = &run_config.train;
    let device = training_device(run_config.backend)?;
    device.seed(config.seed);
    let mut model = config.model.init(&device);
    let mut optimizer = AdamConfig::new().init();
    let mut state = CheckpointState {
        epochs_done: 0,
        samples_seen: 0,
    };
    if let Some(saved) = resume_from {
        let dir = run.checkpoint_dir();
        model = model
            .try_load_file(dir.join("model.bpk"))
            .map_err(|err| TrainError::Checkpoint(format!("{}: {err}", dir.display())))?;
        optimizer = optimizer
            .load(dir.join("optimizer.bpk"))
            .map_err(|err| TrainError::Checkpoint(format!("{}: {err}", dir.display())))?;
        run.truncate_metrics(saved.epochs_done)?;
        state = saved;
        log::info!(
            "resuming {} after epoch {}",
            run.path.display(),
            state.epochs_done
        );
    }
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let batch_size = config.batch_size.max(1);
    let mut summary = TrainSummary {
        run: run.path.clone(),
        epochs_done: state.epochs_done,
        val_auroc: f64::NAN,
        samples_per_second: 0.0,
    };
    // The last epoch's validation scores, for the ROC/PR plots at the end.
    let mut val_scores = None;
    let progress = progress_bar((train_split.len() * config.epochs) as u64);
    progress.set_position((train_split.len() * state.epochs_done) as u64);
    for epoch in state.epochs_done + 1..=config.epochs {
        let mut order: Vec<usize> = (0..train_split.len()).collect();
        SplitMix64::derive(config.seed, epoch as u64).shuffle(&mut order);
        let started = Instant::now();
        let (mut loss_sum, mut batches) = (0.0f64, 0usize);
        for chunk in order.chunks(batch_size) {
            let (images, labels) = batch(train_split, chunk, &device);
            let loss = loss_fn.forward(model.forward(images), labels);
            let loss_value: f64 = loss
                .clone()
                .try_into_scalar::<f32>()
                .map_err(|err| TrainError::Device(format!("{err:?}")))?
                .into();
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    loss: loss_value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.learning_rate, model, grads);
            loss_sum += loss_value;
            batches += 1;
            progress.inc(chunk.len() as u64);
            let rate = progress.position() as f64 - (train_split.len() * (epoch - 1)) as f64;
            progress.set_message(format!(
                "epoch {epoch}/{} loss {:.4} {:.0} samples/s",
                config.epochs,
                loss_sum / batches as f64,
                rate / started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        let samples_per_second = train_split.len() as f64 / seconds;
        let (val_loss, scores) = validate(&model.valid(), val_split, batch_size, &device)?;
        let val_auroc = crate::eval::roc_auc(&scores, &val_split.labels).unwrap_or(f64::NAN);
        let row = EpochMetrics {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            val_loss,
            val_auroc,
            samples_per_second,
            learning_rate: config.learning_rate,
        };
        run.append_metrics(&row)?;
        state.epochs_done = epoch;
        state.samples_seen += train_split.len() as u64;
        save_checkpoint(run, &model, &optimizer, state)?;
        log::info!(
            "epoch {epoch}: train loss {:.4}, val loss {val_loss:.4}, val AUROC {val_auroc:.4}, {samples_per_second:.0} samples/s",
            row.train_loss
        );
        summary.epochs_done = epoch;
        summary.val_auroc = val_auroc;
        summary.samples_per_second = samples_per_second;
        val_scores = Some(scores);
        plot_losses(run);
    }
    progress.finish_and_clear();
    model
        .clone()
        .valid()
        .save_file(run.file("model.bpk"))
        .map_err(|err| {
            TrainError::Checkpoint(format!("{}: {err}", run.file("model.bpk").display()))
        })?;
    // A resumed run with no epochs left still gets its plots.
    let scores = match val_scores {
        Some(scores) => scores,
        None => validate(&model.valid(), val_split, batch_size, &device)?.1,
    };
    plot_curves(run, &scores, &val_split.labels, "validation");
    Ok(summary)
}

fn save_checkpoint(
    run: &RunDir,
    model: &ToyNet,
    optimizer: &burn::optim::ModuleOptimizer,
    state: CheckpointState,
) -> Result<(), TrainError> {
    let staging = run.begin_checkpoint()?;
    let failed = |err: burn::store::RecordError| {
        TrainError::Checkpoint(format!("{}: {err}", staging.display()))
    };
    model
        .clone()
        .save_file(staging.join("model.bpk"))
        .map_err(failed)?;
    optimizer
        .save(staging.join("optimizer.bpk"))
        .map_err(failed)?;
    run.commit_checkpoint(state)?;
    Ok(())
}

/// Images `[B, 1, P, P]` and class indices `[B]` for the samples at `indices`.
fn batch(split: &ToySplit, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let patch = split.patch;
    let mut pixels = Vec::with_capacity(indices.len() * patch * patch);
    let mut labels = Vec::with_capacity(indices.len());
    for &index in indices {
        pixels.extend_from_slice(split.image(index));
        labels.push(split.labels[index] as i64);
    }
    let images = Tensor::from_data(
        TensorData::new(pixels, [indices.len(), 1, patch, patch]),
        device,
    );
    let labels = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
    (images, labels)
}

/// Mean cross-entropy and anomaly scores (probability of class 1) over a split.
pub fn validate(
    model: &ToyNet,
    split: &ToySplit,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, Vec<f64>), TrainError> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let indices: Vec<usize> = (0..split.len()).collect();
    let mut scores = Vec::with_capacity(split.len());
    let mut loss_sum = 0.0;
    for chunk in indices.chunks(batch_size.max(1)) {
        let (images, labels) = batch(split, chunk, device);
        let logits = model.forward(images);
        let loss: f32 = loss_fn
            .forward(logits.clone(), labels)
            .try_into_scalar()
            .map_err(|err| TrainError::Device(format!("{err:?}")))?;
        loss_sum += f64::from(loss) * chunk.len() as f64;
        let probabilities = softmax(logits, 1)
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|err| TrainError::Device(format!("{err:?}")))?;
        scores.extend(probabilities.chunks(2).map(|p| f64::from(p[1])));
    }
    Ok((loss_sum / split.len().max(1) as f64, scores))
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Loss curves; a failed plot is logged, never fatal (the CSV holds the numbers).
fn plot_losses(run: &RunDir) {
    let rows = match run.read_metrics() {
        Ok(rows) => rows,
        Err(err) => return log::warn!("no loss plot: {err}"),
    };
    let series = [
        Series {
            label: "train loss".into(),
            points: rows
                .iter()
                .map(|r| (r.epoch as f64, r.train_loss))
                .collect(),
        },
        Series {
            label: "validation loss".into(),
            points: rows.iter().map(|r| (r.epoch as f64, r.val_loss)).collect(),
        },
    ];
    if let Err(err) = line_chart(
        &run.file("loss.png"),
        "ToyNet loss",
        "epoch",
        "cross-entropy",
        &series,
        false,
    ) {
        log::warn!("no loss plot: {err}");
    }
}

/// ROC and PR curves of `scores`, written as `roc.png` and `pr.png`.
pub fn plot_curves(run: &RunDir, scores: &[f64], labels: &[bool], split: &str) {
    let curves = crate::eval::roc_curve(scores, labels)
        .and_then(|roc| Ok((roc, crate::eval::precision_recall_curve(scores, labels)?)));
    let ((fpr, tpr, _), (precision, recall, _)) = match curves {
        Ok(curves) => curves,
        Err(err) => return log::warn!("no ROC/PR plots: {err}"),
    };
    let roc = Series {
        label: format!("{split} ROC"),
        points: fpr.into_iter().zip(tpr).collect(),
    };
    let pr = Series {
        label: format!("{split} precision-recall"),
        points: recall.into_iter().zip(precision).collect(),
    };
    for (name, title, x, y, series) in [
        (
            "roc.png",
            "ROC",
            "false positive rate",
            "true positive rate",
            roc,
        ),
        ("pr.png", "precision-recall", "recall", "precision", pr),
    ] {
        if let Err(err) = line_chart(&run.file(name), title, x, y, &[series], true) {
            log::warn!("no {name}: {err}");
        }
    }
}
