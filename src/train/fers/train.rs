//! Training FERS-edge in two stages, each keeping the epoch whose *validation* scenes score
//! best: stage 1 (FERD) by the AUC of RX on data + spectral features, stage 2 (the student) by
//! the AUC of the fused detector. The validation scenes are made from library spectra by
//! `fers make-data`; the paper's code selected on its test scenes instead.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{TileGroup, ValidationScene, read_training, read_validation};
use super::losses::student_loss;
use super::model::{FersEdgeConfig, RebelliousStudent, RestorationNet, SpectralFen};
use crate::hsi::fers::{Features, Fusion, fused_scores, with_maps};
use crate::hsi::{Cube, HsiError};
use crate::train::TrainError;
use crate::train::backend::{BackendKind, inference_device, training_device};
use crate::train::epoch::{MetricsLog, save, train_epoch};
use crate::train::mobilenet::MobileNetV2;
use crate::train::pytorch::read_state_dict;
use crate::train::rng::SplitMix64;
use crate::train::run::RunDir;

/// Hyper-parameters of a FERS-edge run (FERD's and FERS's schedules: Adam, lr 0.005, betas
/// (0.5, 0.999), batch 16; the paper trains 60 epochs per stage on a GPU).
#[derive(Config, Debug)]
pub struct FersTrainConfig {
    pub model: FersEdgeConfig,
    #[config(default = 60)]
    pub ferd_epochs: usize,
    #[config(default = 60)]
    pub student_epochs: usize,
    #[config(default = 16)]
    pub batch_size: usize,
    #[config(default = 0.005)]
    pub learning_rate: f64,
    #[config(default = 0.5)]
    pub beta_1: f32,
    #[config(default = 820)]
    pub seed: u64,
}

/// What `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FersRunConfig {
    pub family: String,
    pub data: PathBuf,
    /// Folders under `train/` the background cubes come from.
    pub sources: Vec<String>,
    /// The folder under `test/` whose labelled scenes select the checkpoints.
    pub validation: String,
    /// Every training cube, so that evaluation can tell which scenes the model has seen.
    pub training_files: Vec<PathBuf>,
    /// torchvision's MobileNetV2 ImageNet weights.
    pub mobilenet: PathBuf,
    pub backend: BackendKind,
    pub train: FersTrainConfig,
}

/// The best epoch of each stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FersTrainSummary {
    pub ferd_best_epoch: usize,
    pub ferd_validation_auc: f64,
    pub student_best_epoch: usize,
    pub student_validation_auc: f64,
    /// The validation AUC of global RX on the data alone, the bar both stages should clear.
    pub rx_validation_auc: f64,
    pub seconds: f64,
}

pub const FERD_FILE: &str = "ferd.bpk";
pub const STUDENT_FILE: &str = "student.bpk";

/// Reads the ImageNet MobileNetV2 the frozen bank and trunk are cut from.
pub fn load_mobilenet(path: &Path, device: &Device) -> Result<MobileNetV2, TrainError> {
    let weights = read_state_dict(path)?;
    Ok(MobileNetV2::from_torchvision(&weights, device)?)
}

/// Trains both stages into a new run folder.
pub fn train(
    data: &Path,
    sources: &[String],
    validation: &str,
    mobilenet: &Path,
    run_path: &Path,
    backend: BackendKind,
    config: FersTrainConfig,
) -> Result<FersTrainSummary, TrainError> {
    let bands = config.model.bands;
    let data_error = |e: super::data::FersDataError| TrainError::Config(e.to_string());
    // Everything is read and checked before the run folder exists.
    let groups = read_training(data, sources, bands).map_err(data_error)?;
    let scenes = read_validation(data, validation, bands).map_err(data_error)?;
    let device = training_device(backend)?;
    let mobilenet_net = load_mobilenet(mobilenet, &device)?;
    let run = RunDir::create(run_path)?;
    let run_config = FersRunConfig {
        family: "fers".into(),
        data: data.to_path_buf(),
        sources: sources.to_vec(),
        validation: validation.into(),
        training_files: groups.iter().flat_map(|g| g.sources.clone()).collect(),
        mobilenet: mobilenet.to_path_buf(),
        backend,
        train: config,
    };
    run.write_json("config.json", &run_config)?;
    let config = &run_config.train;
    let started = Instant::now();
    device.seed(config.seed);
    let rx_validation_auc = mean_auc(&scenes, |scene| rx(&scene.cube))?;
    log::info!("validation AUC of RX on the data alone: {rx_validation_auc:.4}");

    // Stage 1: FERD.
    let mut ferd = config.model.init_ferd(&mobilenet_net, &device);
    let mut optimizer = AdamConfig::new().with_beta_1(config.beta_1).init();
    let mut log = MetricsLog::create(
        &run,
        "ferd.csv",
        "epoch,loss,cosine,reconstruction,alignment,validation_auc,tiles_per_second",
    )?;
    let (mut ferd_best_epoch, mut ferd_best_auc) = (0, f64::NEG_INFINITY);
    for epoch in 1..=config.ferd_epochs {
        let batches = batches_of(&groups, config.batch_size, config.seed, epoch);
        let (trained, means, rate) = train_epoch(
            ferd,
            &mut optimizer,
            batches,
            |_| config.learning_rate,
            epoch,
            |ferd, (group, indices)| {
                let loss = ferd.loss(batch_tensor(group, &indices, &device));
                let terms = vec![loss.total, loss.cosine, loss.reconstruction, loss.alignment];
                (terms, indices.len())
            },
        )?;
        ferd = trained;
        let fen = ferd.valid().fen;
        let auc = mean_auc(&scenes, |scene| {
            let spectral = fen_features(&fen, &scene.cube)?;
            rx(&with_maps(&scene.cube, &[&spectral])?)
        })?;
        log.row(&format!(
            "{epoch},{},{},{},{},{auc},{rate:.2}",
            means[0], means[1], means[2], means[3]
        ))?;
        log::info!(
            "FERD epoch {epoch}/{}: loss {:.4} (cos {:.4}, rec {:.5}, align {:.4}), validation AUC {auc:.4}, {rate:.1} tiles/s",
            config.ferd_epochs,
            means[0],
            means[1],
            means[2],
            means[3]
        );
        if auc > ferd_best_auc {
            (ferd_best_epoch, ferd_best_auc) = (epoch, auc);
            save(&ferd.valid(), &run.file(FERD_FILE))?;
        }
    }
    if ferd_best_epoch == 0 {
        return Err(TrainError::Config("stage 1 ran no epoch".into()));
    }

    // Stage 2: the rebellious student, against the best FERD's frozen spectral network.
    let teacher = config
        .model
        .init_ferd(&mobilenet_net, &device)
        .try_load_file(run.file(FERD_FILE))
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", run.file(FERD_FILE).display())))?
        .fen
        .freeze();
    let mut student = StudentTraining {
        student: config.model.init_student(&mobilenet_net, &device),
        restoration: config.model.init_restoration(&device),
    };
    let mut optimizer = AdamConfig::new().with_beta_1(config.beta_1).init();
    let fusion = Fusion::for_bands(bands);
    let mut log = MetricsLog::create(
        &run,
        "student.csv",
        "epoch,loss,decorrelation,orthogonality,variance,reconstruction,validation_auc,tiles_per_second",
    )?;
    let (mut student_best_epoch, mut student_best_auc) = (0, f64::NEG_INFINITY);
    let teacher_valid = teacher.valid();
    for epoch in 1..=config.student_epochs {
        let batches = batches_of(&groups, config.batch_size, config.seed ^ 0x5eed, epoch);
        let (trained, means, rate) = train_epoch(
            student,
            &mut optimizer,
            batches,
            |_| config.learning_rate,
            epoch,
            |student, (group, indices)| {
                let cube = batch_tensor(group, &indices, &device);
                let spectral = teacher.forward(cube.clone()).detach();
                let spatial = student.student.forward(cube.clone());
                let restored = student
                    .restoration
                    .forward(spectral.clone() + spatial.clone());
                let loss = student_loss(spectral, spatial, restored, cube);
                let terms = vec![
                    loss.total,
                    loss.decorrelation,
                    loss.orthogonality,
                    loss.variance,
                    loss.reconstruction,
                ];
                (terms, indices.len())
            },
        )?;
        student = trained;
        let spatial_net = student.student.valid();
        let auc = mean_auc(&scenes, |scene| {
            let features = Features {
                spectral: fen_features(&teacher_valid, &scene.cube)?,
                spatial: student_features(&spatial_net, &scene.cube)?,
            };
            fused_scores(&scene.cube, &features, fusion, rx)
        })?;
        log.row(&format!(
            "{epoch},{},{},{},{},{},{auc},{rate:.2}",
            means[0], means[1], means[2], means[3], means[4]
        ))?;
        log::info!(
            "student epoch {epoch}/{}: loss {:.4} (cc {:.4}, cos {:.4}, var {:.4}, rec {:.5}), validation AUC {auc:.4}, {rate:.1} tiles/s",
            config.student_epochs,
            means[0],
            means[1],
            means[2],
            means[3],
            means[4]
        );
        if auc > student_best_auc {
            (student_best_epoch, student_best_auc) = (epoch, auc);
            save(&spatial_net, &run.file(STUDENT_FILE))?;
        }
    }
    if student_best_epoch == 0 {
        return Err(TrainError::Config("stage 2 ran no epoch".into()));
    }
    let summary = FersTrainSummary {
        ferd_best_epoch,
        ferd_validation_auc: ferd_best_auc,
        student_best_epoch,
        student_validation_auc: student_best_auc,
        rx_validation_auc,
        seconds: started.elapsed().as_secs_f64(),
    };
    run.write_json("summary.json", &summary)?;
    Ok(summary)
}

/// Stage 2's trainable parts, one module so that one optimizer steps both.
#[derive(Module, Debug)]
pub struct StudentTraining {
    pub student: RebelliousStudent,
    pub restoration: RestorationNet,
}

/// The trained networks of a run, on the CPU, for export and evaluation.
pub struct TrainedFers {
    pub config: FersRunConfig,
    pub spectral: SpectralFen,
    pub spatial: RebelliousStudent,
}

pub fn load_trained(run: &RunDir) -> Result<TrainedFers, TrainError> {
    let config: FersRunConfig = run.read_json("config.json")?;
    let device = inference_device(BackendKind::Flex)?;
    let mobilenet = load_mobilenet(&config.mobilenet, &device)?;
    let load_error = |file: &str, e: burn::store::RecordError| {
        TrainError::Checkpoint(format!(
            "{}: {e} (has the run finished training?)",
            run.file(file).display()
        ))
    };
    let spectral = config
        .train
        .model
        .init_ferd(&mobilenet, &device)
        .try_load_file(run.file(FERD_FILE))
        .map_err(|e| load_error(FERD_FILE, e))?
        .fen;
    let spatial = config
        .train
        .model
        .init_student(&mobilenet, &device)
        .try_load_file(run.file(STUDENT_FILE))
        .map_err(|e| load_error(STUDENT_FILE, e))?;
    Ok(TrainedFers {
        config,
        spectral,
        spatial,
    })
}

/// One epoch's batches: every tile once, in a seeded order, each batch within one size group.
fn batches_of(
    groups: &[TileGroup],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<(&TileGroup, Vec<usize>)> {
    let mut rng = SplitMix64::derive(seed, epoch as u64);
    let mut batches = Vec::new();
    for group in groups {
        let mut order: Vec<usize> = (0..group.len()).collect();
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch_size.max(1)) {
            batches.push((group, chunk.to_vec()));
        }
    }
    rng.shuffle(&mut batches);
    batches
}

fn batch_tensor(group: &TileGroup, indices: &[usize], device: &Device) -> Tensor<4> {
    let mut values = Vec::with_capacity(indices.len() * group.tile(0).len());
    for &index in indices {
        values.extend_from_slice(group.tile(index));
    }
    Tensor::from_data(
        TensorData::new(values, [indices.len(), group.side, group.side, group.bands]),
        device,
    )
}

fn cube_tensor(cube: &Cube, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(
            cube.data().to_vec(),
            [1, cube.rows(), cube.cols(), cube.bands()],
        ),
        device,
    )
}

fn tensor_cube(tensor: Tensor<4>) -> Result<Cube, HsiError> {
    let [_, rows, cols, bands] = tensor.dims();
    let values = tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| HsiError::Detector(format!("{e:?}")))?;
    Cube::from_bip(rows, cols, bands, values)
}

/// The spectral network's map of a whole normalised scene (it is fully convolutional).
pub fn fen_features(fen: &SpectralFen, cube: &Cube) -> Result<Cube, HsiError> {
    tensor_cube(fen.forward(cube_tensor(cube, &device_of(fen))))
}

/// The device a network's weights live on: a run on CUDA validates on CUDA, export and
/// evaluation (networks loaded on the CPU) run on the CPU.
fn device_of<M: Module>(module: &M) -> Device {
    module
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

/// The student's map of a whole normalised scene, pooled over the whole scene.
pub fn student_features(student: &RebelliousStudent, cube: &Cube) -> Result<Cube, HsiError> {
    tensor_cube(student.forward(cube_tensor(cube, &device_of(student))))
}

/// Global RX with all cores.
pub fn rx(cube: &Cube) -> Result<Vec<f32>, HsiError> {
    crate::hsi::background::global_rx(cube, faer::Par::rayon(0))
}

/// Mean pixel AUC of `score` over the scenes.
fn mean_auc(
    scenes: &[ValidationScene],
    score: impl Fn(&ValidationScene) -> Result<Vec<f32>, HsiError>,
) -> Result<f64, TrainError> {
    let mut total = 0.0;
    for scene in scenes {
        let scores: Vec<f64> = score(scene)
            .map_err(|e| TrainError::Config(format!("validation scene {}: {e}", scene.name)))?
            .into_iter()
            .map(f64::from)
            .collect();
        total += crate::eval::roc_auc(&scores, &scene.labels)
            .map_err(|e| TrainError::Config(format!("validation scene {}: {e}", scene.name)))?;
    }
    Ok(total / scenes.len().max(1) as f64)
}
