//! `vigil-train`: trains, exports, quantizes and evaluates vigil's models with burn.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use vigil::train::backend::BackendKind;
use vigil::train::run::RunDir;
use vigil::train::toy;

#[derive(Parser)]
#[command(
    name = "vigil-train",
    version,
    about = "Train, export, quantize and evaluate vigil's models"
)]
struct Cli {
    #[command(subcommand)]
    family: Family,
}

#[derive(Subcommand)]
enum Family {
    /// The toy family: a small conv + transformer classifier on synthetic texture patches.
    Toy {
        #[command(subcommand)]
        command: ToyCommand,
    },
    /// Run any single-input f32 ONNX model in tract on a .npy input and write its first output
    /// as .npy, and any further output N as OUTPUT with extension N.npy (for cross-checks
    /// against onnxruntime: scripts/reference/check_onnx_ort.py).
    RunOnnx {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Make an int8 model from any fp32 ONNX model with one fixed-shape input and a calibration
    /// set (.npy, one sample per row); report the speed-up in tract and, given held-out samples
    /// and labels, the ROC AUC lost.
    Quantize {
        model: PathBuf,
        #[arg(long)]
        calibration: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Held-out samples (.npy, one per row) ...
        #[arg(long, requires = "labels")]
        held_out: Option<PathBuf>,
        /// ... and their labels (.npy of 0/1).
        #[arg(long, requires = "held_out")]
        labels: Option<PathBuf>,
        /// Which element of the output is the anomaly score.
        #[arg(long, default_value_t = 1)]
        score_index: usize,
    },
    /// FERS-edge, the hyperspectral family: training data so far.
    Fers {
        #[command(subcommand)]
        command: FersCommand,
    },
    /// ISSTAD-edge: industrial defects (MAE ViT + pixel classifier) on MVTec AD layout folders.
    Isstad {
        #[command(subcommand)]
        command: IsstadCommand,
    },
    /// Factory-line detectors fitted on a folder of good parts (PatchCore on a frozen ImageNet
    /// backbone): export the backbone, fit, evaluate and install.
    Industrial {
        #[command(subcommand)]
        command: IndustrialCommand,
    },
    /// MAVD, audio-visual violence: the authors' heads, training and XD-Violence evaluation.
    Mavd {
        #[command(subcommand)]
        command: MavdCommand,
    },
    /// MobileNetV2, the ImageNet backbone: conversion from torchvision weights.
    Mobilenet {
        #[command(subcommand)]
        command: MobileNetCommand,
    },
    /// Audio events (gunshots, screams, …): the development set mixed from real recordings.
    AudioEvents {
        #[command(subcommand)]
        command: AudioEventsCommand,
    },
}

#[derive(Subcommand)]
enum AudioEventsCommand {
    /// Mix the development set: per part, ~5-minute 16 kHz recordings of events over speech and
    /// ambient beds, with `NN.events.csv` (start,end,label,snr_db,source), `NN.background.csv`
    /// and `summary.json`. Sources come from scripts/fetch-audio-events.sh.
    MakeData {
        /// `DEST/sources` of scripts/fetch-audio-events.sh.
        #[arg(long, default_value = "data/audio-events/sources")]
        sources: PathBuf,
        #[arg(long, default_value = "models/audio-events/devset.tsv")]
        list: PathBuf,
        #[arg(long, default_value = "data/audio-events/mix")]
        out: PathBuf,
        /// Parts to make, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "train,validation,test")]
        parts: Vec<String>,
        /// Minutes of mix per part (default: 120 for train, 30 for validation and test).
        #[arg(long)]
        minutes: Option<f64>,
        /// Length of each recording.
        #[arg(long, default_value_t = 5.0)]
        recording_minutes: f64,
        /// SNRs in dB, taken in turn per label (active-frame RMS of the event over the bed's).
        #[arg(
            long,
            value_delimiter = ',',
            allow_negative_numbers = true,
            default_value = "0,6,12"
        )]
        snr_db: Vec<f64>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Most uses of one event file in a part.
        #[arg(long, default_value_t = 8)]
        max_repeats: usize,
        /// Minutes of extra event-free recordings per part (`bg-NN.wav`), for false-alarm
        /// rates measured on hours of background.
        #[arg(long, default_value_t = 0.0)]
        background_minutes: f64,
    },
    /// Learn the box's labels and fit their settings: a head on YAMNet's embedding trained on
    /// DATA/train, per-label score, threshold and open_after chosen on DATA/validation for a
    /// false-alarm budget, DATA/test reported under them. Each part is a folder of NAME.wav +
    /// NAME.events.csv (make-data writes them; so can a site's own marked recordings).
    Fit {
        #[arg(long, default_value = "data/audio-events/mix")]
        data: PathBuf,
        #[arg(long, default_value = "runs/audio-events")]
        out: PathBuf,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "gunshot,explosion,screaming,shout,impact,glass_breaking"
        )]
        labels: Vec<String>,
        /// False alarms per hour of background all labels together may raise on validation.
        #[arg(long, default_value_t = 1.0)]
        false_alarms_per_hour: f64,
        /// Width of the head's hidden layer; 0 for a linear head.
        #[arg(long, default_value_t = 0)]
        hidden: usize,
        /// Passes over the training patches (about 0.05 s each for 20,000 patches).
        #[arg(long, default_value_t = 300)]
        epochs: usize,
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
        backend: BackendKind,
        /// 10 ms frames between the starts of YAMNet's 0.96 s patches (its own: 48); the
        /// profile section carries it.
        #[arg(long, default_value_t = 48)]
        patch_hop_frames: usize,
        /// Copy the head into this models folder and write its manifest entry.
        #[arg(long)]
        install: Option<PathBuf>,
    },
}

/// The shipped backbone graph PatchCore fits and runs on.
const PATCHCORE_BACKBONE: &str = "models/patchcore/mobilenet_v2_patch_features.onnx";

#[derive(Clone, Copy, clap::ValueEnum)]
enum IndustrialMethod {
    /// A memory bank of locally aware patch features of a frozen ImageNet backbone.
    Patchcore,
    /// ISSTAD's stage 2: a pixel classifier after every decoder block, trained on the
    /// authors' corruptions of the good images, on the frozen ImageNet MobileNetV2.
    Isstad,
}

/// torchvision's MobileNetV2 ImageNet weights, as scripts/fetch-mobilenet.sh leaves them.
const MOBILENET_WEIGHTS: &str = "models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth";

/// The encoder ISSTAD's stage 2 freezes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum IsstadEncoderArg {
    /// The paper's two stages, the ViT MAE trained from scratch on the good images.
    Mae,
    /// torchvision's ImageNet MobileNetV2 through its stride-16 stage (stage 2 only).
    MobilenetV2,
}

impl From<IsstadEncoderArg> for vigil::train::isstad::model::EncoderKind {
    fn from(arg: IsstadEncoderArg) -> Self {
        match arg {
            IsstadEncoderArg::Mae => Self::Mae,
            IsstadEncoderArg::MobilenetV2 => Self::MobileNetV2,
        }
    }
}

#[derive(Subcommand)]
enum IndustrialCommand {
    /// Export torchvision's MobileNetV2 cut at PatchCore's two mid-level stages as one ONNX
    /// graph, checked against burn on every output.
    Backbone {
        /// torchvision's MobileNetV2 ImageNet weights (scripts/fetch-mobilenet.sh).
        #[arg(
            long,
            default_value = "models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"
        )]
        weights: PathBuf,
        #[arg(long, default_value = PATCHCORE_BACKBONE)]
        out: PathBuf,
        #[arg(long, default_value_t = 224)]
        image_size: usize,
        /// Where features are read: block indices (`5` is torchvision's `features.6`), `e` for
        /// a block's expansion (`6e`); default PatchCore's two mid-level stages, 5 and 12.
        #[arg(long, value_delimiter = ',', default_values = ["5", "12"])]
        taps: Vec<vigil::train::mobilenet::Tap>,
    },
    /// Write an int8 version of the backbone graph (every convolution on integer kernels),
    /// calibrated on good images; `fit --backbone` then fits a bank on it.
    Quantize {
        #[arg(long, default_value = PATCHCORE_BACKBONE)]
        backbone: PathBuf,
        /// Good images to calibrate on (an MVTec AD category or a folder of PNGs).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 224)]
        image_size: usize,
        #[arg(long, default_value_t = 8)]
        calibration_images: usize,
    },
    /// Fit a detector on good images: an MVTec AD category (its train/good) or a folder of PNGs.
    Fit {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value = "patchcore")]
        method: IndustrialMethod,
        /// The new run folder.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = PATCHCORE_BACKBONE)]
        backbone: PathBuf,
        #[arg(long, default_value_t = 224)]
        image_size: usize,
        /// Share of the good patches kept in the memory bank.
        #[arg(long, default_value_t = 0.01)]
        coreset_fraction: f64,
        /// Width of the random projection the coreset's distances use.
        #[arg(long, default_value_t = 128)]
        projection_dim: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Good images held out of the bank to fit the thresholds. Default: the data set's
        /// `validation/good` if it has one, else every `--validation-every`-th good image.
        #[arg(long)]
        validation: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        validation_every: usize,
        /// The false-alarm rate on good parts the image threshold aims at.
        #[arg(long, default_value_t = 0.01)]
        target_false_alarm: f64,
        /// `--method isstad`: the frozen encoder.
        #[arg(long, value_enum, default_value_t = IsstadEncoderArg::MobilenetV2)]
        encoder: IsstadEncoderArg,
        /// `--method isstad --encoder mae`: epochs of the MAE's first stage.
        #[arg(long, default_value_t = 30)]
        mae_epochs: usize,
        /// `--method isstad`: training epochs of the pixel classifier.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// `--method isstad`: images per step.
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// `--method isstad`: torchvision's MobileNetV2 weights the encoder is read from.
        #[arg(long, default_value = MOBILENET_WEIGHTS)]
        weights: PathBuf,
        #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
        backend: BackendKind,
    },
    /// Score a labelled test set (MVTec AD layout; default: the fit's data folder) at the
    /// fitted thresholds; `--install` then ships the model into a models folder.
    Eval {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        test: Option<PathBuf>,
        /// A models folder (e.g. `models`) to copy the model's files into and record the
        /// model in its manifest.toml.
        #[arg(long)]
        install: Option<PathBuf>,
    },
}

/// A split folder holds `rgb.list`, `flow.list`, `audio.list` (XD-Violence's list files) and,
/// for testing, `gt.npy` (frame labels, 16 per snippet, videos in list order).
#[derive(Subcommand)]
enum MavdCommand {
    /// Load the authors' published heads (`*_model.pth`), checking every tensor, into a run
    /// folder that `eval` and `export` read.
    Import {
        /// The folder with v_, a_, f_, va_, vf_ and vaf_model.pth.
        #[arg(long, default_value = "../shared/data/mavd-weights")]
        weights: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train as the paper does (Adam 1e-4, batch 128, 1000 steps, test AP every 10).
    Train {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        /// What relative paths in the lists start from (default: each split's folder).
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        #[arg(long, default_value_t = 10)]
        eval_every: usize,
        /// Snippets per training bag.
        #[arg(long, default_value_t = 200)]
        train_snippets: usize,
        #[arg(long, default_value_t = 500)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
        backend: BackendKind,
    },
    /// Frame-level AP of a run's weights on a test split, as XD-Violence's code computes it.
    Eval {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        test: PathBuf,
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// The surveillance pipeline's cost per snippet by stage and its real-time factor on
    /// generated camera + microphone input (`scripts/bench/mavd.py` adds onnxruntime's times).
    #[cfg(feature = "gst")]
    Bench {
        #[arg(long, default_value = "var/mavd-bench")]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        #[arg(long, default_value_t = 24)]
        window: usize,
    },
    /// Stage MAVD-edge's training and test splits from real footage, speech and sounds
    /// (`../shared/data/README.md`), extracted by the runtime's extractors, in XD-Violence's
    /// list layout with one crop per video.
    #[cfg(feature = "gst")]
    EdgeData {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 96)]
        train_clips: usize,
        #[arg(long, default_value_t = 32)]
        validation_clips: usize,
        #[arg(long, default_value_t = 32)]
        test_clips: usize,
        #[arg(long, default_value_t = 8.0)]
        clip_seconds: f32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// The RGB extractor.
        #[arg(long, default_value = "models/mavd-edge/mobilenet_v2_features.onnx")]
        rgb_model: PathBuf,
    },
    /// Write the sliding-window ONNX graph the runtime runs, checked against burn.
    Export {
        #[arg(long)]
        run: PathBuf,
        /// Snippets the window holds (24 ≈ 16 s at 24 fps).
        #[arg(long, default_value_t = 24)]
        window: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum FersCommand {
    /// Write a HAD100-layout set mixed from measured spectra: background-only training cubes,
    /// and test scenes with implanted sub-pixel targets and their ground-truth PNGs.
    MakeData {
        #[arg(long)]
        out: PathBuf,
        /// An ENVI spectral library (scripts/fetch-spectra.sh fetches earthlib's).
        #[arg(long, default_value = "models/cache/spectra/earthlib/spectra.sli.hdr")]
        library: PathBuf,
        #[arg(long, default_value_t = 64)]
        train: usize,
        #[arg(long, default_value_t = 16)]
        test: usize,
        /// Scene side in pixels (HAD100's is 64).
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 200)]
        bands: usize,
        /// Targets per test scene, and the fraction of their pixel they cover.
        #[arg(long, default_value_t = 8)]
        targets: usize,
        #[arg(long, default_value_t = 0.3)]
        fill: f64,
        /// Library classes of the background and of the targets.
        #[arg(long, default_value = "pervious")]
        background: String,
        #[arg(long, default_value = "impervious")]
        target: String,
        /// Folder under train/, test/, ground_truth/.
        #[arg(long, default_value = "synthetic")]
        sensor: String,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also cut background-only training patches from the labelled scenes (.mat with
        /// `data` and `map`) in this folder, e.g. ../shared/data/hsi, into train/real/.
        #[arg(long)]
        real_scenes: Option<PathBuf>,
        /// Scene stems kept out of training, to evaluate on (leave-one-scene-out).
        #[arg(long, value_delimiter = ',')]
        hold_out: Vec<String>,
        /// Side of the real-scene patches: ABU's anomalies are spread over 100×100 scenes, so
        /// few 64×64 windows are free of them.
        #[arg(long, default_value_t = 32)]
        real_patch: usize,
    },
    /// Train both FERS-edge stages on background cubes, keeping each stage's epoch that
    /// scores best on the validation scenes (never on the scenes the card reports).
    Train {
        /// A HAD100-layout folder (`fers make-data` writes one).
        #[arg(long)]
        data: PathBuf,
        /// Folders under train/ to take background cubes from.
        #[arg(long, value_delimiter = ',', default_value = "synthetic,real")]
        sources: Vec<String>,
        /// The folder under test/ whose labelled scenes select the checkpoints.
        #[arg(long, default_value = "synthetic")]
        validation: String,
        /// The run folder to create.
        #[arg(long)]
        out: PathBuf,
        /// Leading bands the model reads (the paper ships 50, 100 and 200).
        #[arg(long, default_value_t = 200)]
        bands: usize,
        #[arg(long, default_value_t = 60)]
        ferd_epochs: usize,
        #[arg(long, default_value_t = 60)]
        student_epochs: usize,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        #[arg(long, default_value_t = 820)]
        seed: u64,
        /// torchvision's MobileNetV2 ImageNet weights (scripts/fetch-mobilenet.sh).
        #[arg(
            long,
            default_value = "models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"
        )]
        mobilenet: PathBuf,
        #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
        backend: BackendKind,
    },
    /// Export a trained run to ONNX (checked against burn), quantize it to int8, and write
    /// both into the run's manifest.toml; `--install` also ships the int8 graph.
    Export {
        #[arg(long)]
        run: PathBuf,
        /// A models folder (e.g. `models`) to copy the int8 graph into and record in its
        /// manifest.toml.
        #[arg(long)]
        install: Option<PathBuf>,
    },
    /// The model card's table: GRX, and FERS-edge fp32 and int8 fused into RX and local RX,
    /// per labelled scene, with times; scenes the model trained on are marked, not scored.
    Eval {
        #[arg(long)]
        run: PathBuf,
        /// A folder of labelled `.mat` scenes.
        #[arg(long, default_value = "../shared/data/hsi")]
        scenes: PathBuf,
    },
}

/// Network sizes `isstad train` offers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum IsstadSize {
    /// ISSTAD-edge: ViT 192 wide, 6 blocks; decoder 128 wide, 4 blocks (2 from stage 1).
    Edge,
    /// The paper's ViT-L/16 with a 12-block decoder, for GPU workstations.
    Paper,
    /// 64×64 images and two-block networks, for tests.
    Tiny,
}

#[derive(Subcommand)]
enum IsstadCommand {
    /// Write MVTec AD layout categories (brick, grass, gravel) from real CC0 textures, with
    /// scratches, cracks, holes, stains and contamination as test defects.
    MakeData {
        #[arg(long)]
        out: PathBuf,
        /// Folder holding brick.png, grass.png and gravel.png (scripts/fetch-photos.sh).
        #[arg(long, default_value = "models/cache/textures")]
        textures: PathBuf,
        /// Image side in pixels.
        #[arg(long, default_value_t = 192)]
        side: usize,
        #[arg(long, default_value_t = 200)]
        train: usize,
        #[arg(long, default_value_t = 150)]
        test_good: usize,
        /// Test images of each of the five defect types.
        #[arg(long, default_value_t = 30)]
        test_per_defect: usize,
        /// Fraction of each texture's rows, from the top, that training crops come from; test
        /// crops come from the rest.
        #[arg(long, default_value_t = 0.5)]
        train_rows: f64,
        /// Good validation images (`validation/good`) from columns of the training rows that no
        /// training crop covers, for fitting thresholds (0: none).
        #[arg(long, default_value_t = 40)]
        validation: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Train both stages on a category's normal images (every `--validation-every`-th held
    /// out to select epochs and fit thresholds); no test image is read.
    Train {
        /// An MVTec AD layout category folder (with train/good and test/).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = IsstadSize::Edge)]
        size: IsstadSize,
        /// The encoder stage 2 freezes (`mobilenet-v2` ignores `--size`'s encoder and
        /// `--mae-epochs`; its images are 224×224).
        #[arg(long, value_enum, default_value_t = IsstadEncoderArg::Mae)]
        encoder: IsstadEncoderArg,
        #[arg(long, default_value = MOBILENET_WEIGHTS)]
        weights: PathBuf,
        #[arg(long, default_value_t = 10)]
        validation_every: usize,
        #[arg(long, default_value_t = 60)]
        mae_epochs: usize,
        #[arg(long, default_value_t = 40)]
        pixel_epochs: usize,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        #[arg(long, default_value_t = 111)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
        backend: BackendKind,
    },
    /// Export a trained run to ONNX (checked against burn) and quantize it to int8.
    Export {
        #[arg(long)]
        run: PathBuf,
    },
    /// Score the category's test set with both graphs (image AUROC, pixel AUROC, AUPRO), fit
    /// the thresholds on the validation images, and with `--install` ship both graphs.
    Eval {
        #[arg(long)]
        run: PathBuf,
        /// A models folder (e.g. `models`) to copy the int8 graph into and record in its
        /// manifest.
        #[arg(long)]
        install: Option<PathBuf>,
        /// Install the fp32 graph too (15 MB at the edge size).
        #[arg(long)]
        with_fp32: bool,
    },
}

#[derive(Subcommand)]
enum MobileNetCommand {
    /// Convert torchvision's ImageNet weights (.pth, legacy or zip) into a burn record and an
    /// ONNX graph, checking burn against tract on a photo.
    Convert {
        /// Default: models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth (scripts/fetch-mobilenet.sh).
        #[arg(
            long,
            default_value = "models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"
        )]
        weights: PathBuf,
        #[arg(long, default_value = "models/cache/mobilenet_v2")]
        out: PathBuf,
        /// The photo burn and tract are compared on.
        #[arg(long, default_value = "models/cache/photos/chelsea.png")]
        probe: PathBuf,
    },
    /// Classify PNG photos with the converted ONNX model in tract: top-5 ImageNet classes.
    Classify {
        #[arg(long, default_value = "models/cache/mobilenet_v2/mobilenet_v2.onnx")]
        model: PathBuf,
        photos: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ToyCommand {
    /// Write a synthetic data folder (train/val/test splits as .npy).
    MakeData {
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        train: usize,
        #[arg(long, default_value_t = 400)]
        val: usize,
        #[arg(long, default_value_t = 400)]
        test: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Train a new run, or continue one with --resume.
    Train {
        /// The data folder (from `make-data`).
        #[arg(long, required_unless_present = "resume")]
        data: Option<PathBuf>,
        /// The run folder to create (default runs/toy-<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue this run from its last checkpoint (with --epochs: up to that many in all).
        #[arg(long, conflicts_with_all = ["data", "out", "batch_size", "learning_rate", "seed"])]
        resume: Option<PathBuf>,
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long)]
        learning_rate: Option<f64>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Write the run's model.onnx, checking it against burn on validation patches (1e-4).
    Export {
        run: PathBuf,
        #[arg(long, default_value_t = 16)]
        parity_samples: usize,
    },
    /// Write model-int8.onnx (int8 linear layers, per-channel weight scales) calibrated on
    /// training patches; report the speed-up and the test ROC AUC lost against fp32.
    Quantize {
        run: PathBuf,
        #[arg(long, default_value_t = 256)]
        calibration_samples: usize,
    },
    /// Evaluate through the runtime's tract path; fit the alert threshold on validation data
    /// and write it into the run's manifest.toml (and into --manifest when given).
    Eval {
        run: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
}

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,tract_linalg=warn"),
    )
    .init();
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.family {
        Family::Toy { command } => run_toy(command),
        Family::Mobilenet { command } => run_mobilenet(command),
        Family::Fers { command } => run_fers(command),
        Family::Mavd { command } => run_mavd(command),
        Family::Isstad { command } => run_isstad(command),
        Family::Industrial { command } => run_industrial(command),
        Family::AudioEvents { command } => run_audio_events(command),
        Family::Quantize {
            model,
            calibration,
            out,
            held_out,
            labels,
            score_index,
        } => quantize_any(
            &model,
            &calibration,
            &out,
            held_out.zip(labels).as_ref(),
            score_index,
        ),
        Family::RunOnnx {
            model,
            input,
            output,
        } => {
            use vigil::io::npy::{read_npy, write_npy};
            let array = read_npy::<f32>(&input)?;
            let model = vigil::train::onnx::load(&model)?;
            let (shape, values) =
                vigil::train::parity::run_tract(&model, &array.shape, &array.data)?;
            write_npy(&output, &shape, &values)?;
            // Graphs with several outputs (PatchCore's backbone taps): the others beside it,
            // `<output>.1.npy`, `<output>.2.npy`, … in the graph's order.
            let plan = vigil::train::parity::plan(&model)?;
            let outputs = vigil::train::parity::run_plan_outputs(&plan, &array.shape, &array.data)?;
            let shapes = vigil::train::parity::output_shapes(&plan)?;
            for (index, (values, shape)) in outputs.iter().zip(&shapes).enumerate().skip(1) {
                write_npy(output.with_extension(format!("{index}.npy")), shape, values)?;
            }
            Ok(())
        }
    }
}

fn quantize_any(
    model_path: &std::path::Path,
    calibration: &std::path::Path,
    out: &std::path::Path,
    held_out: Option<&(PathBuf, PathBuf)>,
    score_index: usize,
) -> Result<()> {
    use vigil::io::npy::read_npy;
    use vigil::train::{onnx, parity, quantize};
    let fp32 = onnx::load(model_path)?;
    let shape = quantize::input_shape(&fp32)?;
    let size: usize = shape.iter().product();
    let rows = |path: &std::path::Path| -> Result<Vec<Vec<f32>>> {
        let array = read_npy::<f32>(path)?;
        if array.data.is_empty() || array.data.len() % size != 0 {
            anyhow::bail!(
                "{}: {} values do not split into samples of the model input {shape:?}",
                path.display(),
                array.data.len()
            );
        }
        Ok(array.data.chunks(size).map(<[f32]>::to_vec).collect())
    };
    let calibration = rows(calibration)?;
    let quantized = quantize::quantize(&fp32, &shape, &calibration)?;
    onnx::save(&quantized.model, out)?;
    let fp32_plan = parity::plan(&fp32)?;
    let int8_plan = parity::plan(&quantized.model)?;
    let fp32_ms = quantize::median_latency_ms(&fp32_plan, &shape, &calibration[0], 100)?;
    let int8_ms = quantize::median_latency_ms(&int8_plan, &shape, &calibration[0], 100)?;
    println!(
        "{}: {} linear layers int8; tract {int8_ms:.3} ms vs fp32 {fp32_ms:.3} ms ({:.2}x)",
        out.display(),
        quantized.layers.len(),
        fp32_ms / int8_ms
    );
    if let Some((samples, labels_path)) = held_out {
        let samples = rows(samples)?;
        let labels: Vec<bool> = read_npy::<u8>(labels_path)?
            .data
            .iter()
            .map(|&l| l == 1)
            .collect();
        if labels.len() != samples.len() {
            anyhow::bail!(
                "{}: {} labels for {} held-out samples",
                labels_path.display(),
                labels.len(),
                samples.len()
            );
        }
        let auroc = |plan: &parity::TractPlan| -> Result<f64> {
            let mut scores = Vec::with_capacity(samples.len());
            for sample in &samples {
                let output = parity::run_plan(plan, &shape, sample)?;
                let score = output.get(score_index).copied().with_context(|| {
                    format!(
                        "the output has {} values, no index {score_index}",
                        output.len()
                    )
                })?;
                scores.push(f64::from(score));
            }
            Ok(vigil::eval::roc_auc(&scores, &labels)?)
        };
        let (before, after) = (auroc(&fp32_plan)?, auroc(&int8_plan)?);
        println!(
            "held-out ROC AUC: fp32 {before:.4}, int8 {after:.4} (lost {:+.4})",
            before - after
        );
    }
    Ok(())
}

fn run_mobilenet(command: MobileNetCommand) -> Result<()> {
    use vigil::train::{image, mobilenet, onnx, parity};
    match command {
        MobileNetCommand::Convert {
            weights,
            out,
            probe,
        } => {
            let photo = image::read_png(&probe)?;
            let input = mobilenet::preprocess(&photo.pixels, photo.width, photo.height);
            let done = mobilenet::convert(&weights, &out, &input)?;
            println!(
                "{} and {}: burn and tract agree to {:.2e} on {}",
                done.record.display(),
                done.onnx.display(),
                done.parity.max_abs_diff,
                probe.display()
            );
            println!(
                "{}: pooled 1280-d features, burn and tract agree to {:.1e} of their scale",
                done.features_onnx.display(),
                done.features_relative
            );
        }
        MobileNetCommand::Classify { model, photos } => {
            let model = onnx::load(&model)?;
            let plan = parity::plan(&model)?;
            for path in photos {
                let photo = image::read_png(&path)?;
                let input = mobilenet::preprocess(&photo.pixels, photo.width, photo.height);
                let probabilities = parity::run_plan(&plan, &[1, 3, 224, 224], &input)?;
                let top = mobilenet::top_k(&probabilities, 5);
                let listing: Vec<String> = top
                    .iter()
                    .map(|(class, p)| format!("{class} ({p:.3})"))
                    .collect();
                println!(
                    "{}: ImageNet classes {}",
                    path.display(),
                    listing.join(", ")
                );
            }
        }
    }
    Ok(())
}

fn run_toy(command: ToyCommand) -> Result<()> {
    match command {
        ToyCommand::MakeData {
            dir,
            train,
            val,
            test,
            seed,
        } => {
            let patch = toy::ToyNetConfig::new().patch;
            toy::data::make_data_folder(&dir, [train, val, test], patch, seed)
                .with_context(|| format!("writing {}", dir.display()))?;
            println!(
                "wrote {} ({train} train, {val} val, {test} test patches)",
                dir.display()
            );
        }
        ToyCommand::Train {
            data,
            out,
            resume,
            backend,
            epochs,
            batch_size,
            learning_rate,
            seed,
        } => {
            let summary = if let Some(run) = resume {
                toy::train::resume(&run, backend, epochs)?
            } else {
                let data = data.context("--data is required for a new run")?;
                let mut config = toy::train::ToyTrainConfig::new(toy::ToyNetConfig::new());
                if let Some(epochs) = epochs {
                    config.epochs = epochs;
                }
                if let Some(batch_size) = batch_size {
                    config.batch_size = batch_size;
                }
                if let Some(learning_rate) = learning_rate {
                    config.learning_rate = learning_rate;
                }
                if let Some(seed) = seed {
                    config.seed = seed;
                }
                let out = out.unwrap_or_else(|| RunDir::default_path("toy"));
                toy::train::train(&data, &out, backend.unwrap_or(BackendKind::Flex), config)?
            };
            println!(
                "{}: {} epochs, validation AUROC {:.4}, {:.0} samples/s (last epoch)",
                summary.run.display(),
                summary.epochs_done,
                summary.val_auroc,
                summary.samples_per_second
            );
        }
        ToyCommand::Export {
            run,
            parity_samples,
        } => {
            let run = RunDir::open(&run)?;
            let parity = toy::pipeline::export(&run, parity_samples)?;
            println!(
                "{}: burn and tract agree to {:.2e} (outputs up to {:.3})",
                run.file("model.onnx").display(),
                parity.max_abs_diff,
                parity.max_abs_value
            );
        }
        ToyCommand::Quantize {
            run,
            calibration_samples,
        } => {
            let run = RunDir::open(&run)?;
            let record = toy::pipeline::quantize_run(&run, calibration_samples)?;
            println!(
                "{}: {} linear layers int8; tract {:.3} ms vs fp32 {:.3} ms ({:.2}x); test ROC AUC {:.4} vs fp32 {:.4} (lost {:+.4})",
                run.file("model-int8.onnx").display(),
                record.layers,
                record.int8_ms,
                record.fp32_ms,
                record.speedup,
                record.int8_auroc,
                record.fp32_auroc,
                record.auroc_lost
            );
        }
        ToyCommand::Eval { run, manifest } => {
            let run = RunDir::open(&run)?;
            let evaluation = toy::pipeline::evaluate_run(&run, manifest.as_deref())?;
            println!(
                "{} through the runtime's tract path; threshold {:.4} (validation F1 {:.4})",
                evaluation.model_file.display(),
                evaluation.threshold,
                evaluation.validation_f1
            );
            print!("test split:\n{}", evaluation.test.render());
        }
    }
    Ok(())
}

fn run_industrial(command: IndustrialCommand) -> Result<()> {
    use vigil::train::industrial::{backbone, coreset::CoresetConfig, evaluate, fit, isstad};
    match command {
        IndustrialCommand::Backbone {
            weights,
            out,
            image_size,
            taps,
        } => {
            // A real photo as the probe: activations of a natural image, not of noise.
            let photo = Path::new("models/cache/photos");
            let probe_image = std::fs::read_dir(photo)
                .with_context(|| format!("{}: run scripts/fetch-photos.sh", photo.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "png"))
                .min()
                .with_context(|| format!("no PNG in {}", photo.display()))?;
            let mut resizer = fit::imagenet_resizer(image_size)?;
            let probe = fit::load_image(&probe_image, &mut resizer)?;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let done = backbone::export(&weights, &out, image_size, &taps, &probe)?;
            for (tap, relative) in done.taps.iter().zip(&done.relative_differences) {
                println!(
                    "{tap}: tract vs burn, largest difference {relative:.2e} of the largest value"
                );
            }
            println!("wrote {}", done.onnx.display());
        }
        IndustrialCommand::Quantize {
            backbone,
            data,
            out,
            image_size,
            calibration_images,
        } => {
            let done = backbone::quantize(&backbone, &data, &out, image_size, calibration_images)?;
            let gaps: Vec<String> = done
                .relative_differences
                .iter()
                .map(|g| format!("{g:.3}"))
                .collect();
            println!(
                "{}: {} convolutions int8, calibrated on {} images; on the next, outputs differ from fp32 by {} of their largest value",
                done.int8.display(),
                done.convolutions,
                done.calibration_images,
                gaps.join(", ")
            );
        }
        IndustrialCommand::Fit {
            data,
            method: IndustrialMethod::Isstad,
            out,
            seed,
            validation,
            validation_every,
            encoder,
            mae_epochs,
            epochs,
            batch_size,
            weights,
            backend,
            ..
        } => {
            let config = isstad::IsstadFitConfig {
                data,
                weights,
                validation,
                validation_every,
                encoder: encoder.into(),
                mae_epochs,
                epochs,
                batch_size,
                seed,
                backend,
            };
            let done = isstad::fit(&config, &out)?;
            println!(
                "trained on {} good images, {} held out ({:?}): {}; run folder {}",
                done.train_images,
                done.validation_images,
                done.validation_source,
                describe_isstad_training(&done.summary),
                out.display()
            );
        }
        IndustrialCommand::Fit {
            data,
            method: IndustrialMethod::Patchcore,
            out,
            backbone,
            image_size,
            coreset_fraction,
            projection_dim,
            seed,
            validation,
            validation_every,
            target_false_alarm,
            ..
        } => {
            let config = fit::FitConfig {
                validation,
                image_size,
                coreset: CoresetConfig {
                    fraction: coreset_fraction,
                    projection_dim,
                    seed,
                },
                validation_every,
                target_false_alarm,
                ..fit::FitConfig::new(data, backbone)
            };
            let record = fit::fit(&config, &out)?;
            let t = &record.thresholds;
            println!(
                "fitted {} on {} good images in {:.1} s (features {:.1} s, coreset {:.1} s): bank of {} patches from {} ({:.1} MB)",
                record.category,
                record.train_images.len(),
                record.total_seconds,
                record.feature_seconds,
                record.coreset_seconds,
                record.bank_patches,
                record.candidates,
                record.bank_bytes as f64 / 1e6
            );
            println!(
                "image threshold {:.4} from {} held-out good images (scores {:.4} ± {:.4}): {:.1} % of them alert; a normal fitted to them implies {:.2} % false alarms",
                t.image,
                t.validation_scores.len(),
                t.validation_mean,
                t.validation_std,
                100.0 * t.validation_false_alarms,
                100.0 * t.implied_false_alarm
            );
            println!(
                "pixel threshold {:.4}; run folder {}",
                t.pixel,
                out.display()
            );
        }
        IndustrialCommand::Eval { run, test, install } => {
            let run = RunDir::open(&run)?;
            if isstad::is_isstad_run(&run)? {
                return eval_isstad_run(&run, test.as_deref(), install.as_deref());
            }
            let evaluation = evaluate::evaluate(&run, test.as_deref())?;
            print!("{}", evaluate::card_table(&evaluation));
            if evaluation.pixel_auroc.is_none() {
                println!("pixel metrics skipped: the test set has no ground-truth masks");
            }
            if let Some(models) = install {
                let name = evaluate::install(&run, &models)?;
                println!(
                    "installed {name} into {}",
                    models.join("manifest.toml").display()
                );
            }
        }
    }
    Ok(())
}

/// One line on what an ISSTAD training selected.
fn describe_isstad_training(summary: &vigil::train::isstad::train::IsstadTrainSummary) -> String {
    let stage1 = match (summary.mae_best_epoch, summary.mae_validation_mse) {
        (Some(epoch), Some(mse)) => format!(
            "MAE epoch {epoch} (validation masked MSE {mse:.4}, {:.0} s), ",
            summary.mae_seconds
        ),
        _ => String::new(),
    };
    format!(
        "{stage1}pixel epoch {} (validation pixel AUROC {:.4}, {:.0} s)",
        summary.pixel_best_epoch, summary.pixel_validation_auroc, summary.pixel_seconds
    )
}

/// `industrial eval` on an ISSTAD run: export (once), fp32 and int8 scored at thresholds from
/// the held-out good images, then the int8 graph installed.
fn eval_isstad_run(run: &RunDir, test: Option<&Path>, install: Option<&Path>) -> Result<()> {
    use vigil::train::isstad::pipeline;
    if !run.file("export.json").exists() {
        let record = pipeline::export(run)?;
        println!(
            "exported {} and {} (parity {:.1e}, int8 changes the maps by {:.1e})",
            record.fp32.display(),
            record.int8.display(),
            record.parity_relative,
            record.int8_relative
        );
    }
    let evaluation = pipeline::evaluate(run, test)?;
    print!("{}", pipeline::card_table(&evaluation));
    if let Some(models) = install {
        for target in pipeline::install(run, models, false)? {
            println!("installed {}", target.display());
        }
    }
    Ok(())
}

fn run_isstad(command: IsstadCommand) -> Result<()> {
    use vigil::train::isstad::pipeline;
    match command {
        IsstadCommand::MakeData {
            out,
            textures,
            side,
            train,
            test_good,
            test_per_defect,
            train_rows,
            validation,
            seed,
        } => {
            use vigil::train::isstad::make_data::{MakeDataConfig, make_texture_categories};
            let config = MakeDataConfig {
                side,
                train_good: train,
                test_good,
                test_per_defect,
                train_rows,
                validation_good: validation,
                seed,
                ..MakeDataConfig::default()
            };
            for summary in make_texture_categories(&textures, &out, &config)? {
                let (train_room, test_room) = (&summary.train_room, &summary.test_room);
                if let Some(room) = &summary.validation_room {
                    println!(
                        "{}: {} validation images from rows {}..{}, columns {}..{} ({} positions, {} crops), disjoint from training",
                        summary.root.display(),
                        summary.validation_good,
                        room.rows.start,
                        room.rows.end,
                        room.columns.start,
                        room.columns.end,
                        room.positions,
                        room.crops
                    );
                }
                println!(
                    "{}: {} training images from rows {}..{} ({} positions, {} crops), {} good \
                     and {} defect test images from rows {}..{} ({} positions, {} crops)",
                    summary.root.display(),
                    summary.train_good,
                    train_room.rows.start,
                    train_room.rows.end,
                    train_room.positions,
                    train_room.crops,
                    summary.test_good,
                    summary.defects.iter().map(|d| d.images).sum::<usize>(),
                    test_room.rows.start,
                    test_room.rows.end,
                    test_room.positions,
                    test_room.crops
                );
            }
            Ok(())
        }
        IsstadCommand::Train {
            data,
            out,
            size,
            encoder,
            weights,
            validation_every,
            mae_epochs,
            pixel_epochs,
            batch_size,
            seed,
            backend,
        } => {
            use vigil::train::isstad::corrupt::CorruptionConfig;
            use vigil::train::isstad::model::IsstadConfig;
            use vigil::train::isstad::mvtec::read_category;
            use vigil::train::isstad::train::{IsstadTrainConfig, NormalImages, train};
            let model = match (encoder, size) {
                (IsstadEncoderArg::MobilenetV2, _) => IsstadConfig::pretrained(),
                (IsstadEncoderArg::Mae, IsstadSize::Edge) => IsstadConfig::new(),
                (IsstadEncoderArg::Mae, IsstadSize::Paper) => IsstadConfig::paper(),
                (IsstadEncoderArg::Mae, IsstadSize::Tiny) => IsstadConfig::tiny(),
            };
            let weights = matches!(encoder, IsstadEncoderArg::MobilenetV2).then_some(weights);
            let category = read_category(&data)?;
            let (training, validation) = category.split_validation(validation_every)?;
            let training = NormalImages::read(training)?;
            let validation = NormalImages::read(validation)?;
            let config = IsstadTrainConfig::new(model, CorruptionConfig::new())
                .with_mae_epochs(mae_epochs)
                .with_pixel_epochs(pixel_epochs)
                .with_batch_size(batch_size)
                .with_seed(seed);
            let summary = train(
                &data,
                &training,
                &validation,
                &out,
                backend,
                config,
                weights.as_deref(),
            )?;
            println!("{}: {}", out.display(), describe_isstad_training(&summary));
            Ok(())
        }
        IsstadCommand::Export { run } => {
            let run = RunDir::open(&run)?;
            let record = pipeline::export(&run)?;
            println!(
                "{} and {}: parity {:.1e}, int8 changes the maps by {:.1e} of their range; {} int8 layers; one {}×{} image in {:.1} ms fp32, {:.1} ms int8 (1 thread)",
                record.fp32.display(),
                record.int8.display(),
                record.parity_relative,
                record.int8_relative,
                record.quantized_layers,
                record.image_size,
                record.image_size,
                record.fp32_ms,
                record.int8_ms
            );
            Ok(())
        }
        IsstadCommand::Eval {
            run,
            install,
            with_fp32,
        } => {
            let run = RunDir::open(&run)?;
            let evaluation = pipeline::evaluate(&run, None)?;
            print!("{}", pipeline::card_table(&evaluation));
            if let Some(models) = install {
                for target in pipeline::install(&run, &models, with_fp32)? {
                    println!("installed {}", target.display());
                }
            }
            Ok(())
        }
    }
}

fn run_mavd(command: MavdCommand) -> Result<()> {
    use vigil::train::mavd::train;
    match command {
        MavdCommand::Import { weights, out } => {
            for report in train::import_authors(&weights, &out)? {
                println!(
                    "{}: {} tensors loaded ({} values){}",
                    report.file.display(),
                    report.loaded,
                    report.parameters,
                    if report.aliases > 0 {
                        format!(", {} second names checked equal", report.aliases)
                    } else {
                        String::new()
                    }
                );
            }
            println!("wrote {}", out.display());
            Ok(())
        }
        MavdCommand::Train {
            train: train_split,
            test,
            root,
            out,
            iterations,
            batch_size,
            eval_every,
            train_snippets,
            seed,
            backend,
        } => {
            use vigil::train::mavd::model::MavdConfig;
            let videos = train::read_split(&train_split, root.as_deref())?;
            let [rgb, audio, flow] = train::feature_widths(&videos)?;
            let config = train::MavdTrainConfig::new(MavdConfig::with_inputs(rgb, audio, flow))
                .with_iterations(iterations)
                .with_batch_size(batch_size)
                .with_eval_every(eval_every)
                .with_train_snippets(train_snippets)
                .with_seed(seed);
            let summary =
                train::train(&train_split, &test, root.as_deref(), &out, config, backend)?;
            println!(
                "best test AP {:.4} at iteration {} of {} ({:.0} s); weights in {}",
                summary.best_ap,
                summary.best_iteration,
                summary.iterations,
                summary.seconds,
                out.join(train::CHECKPOINT).display()
            );
            Ok(())
        }
        MavdCommand::Eval { run, test, root } => {
            let device = burn::tensor::Device::flex();
            let (mavd, config) = train::load_run(&run, &device)?;
            let videos = train::read_split(&test, root.as_deref())?;
            let labels = train::read_ground_truth(&test)?;
            let evaluation = train::evaluate(&mavd, &videos, &labels, &device)?;
            println!(
                "AP {:.4} on {} videos ({} snippets), weights: {}",
                evaluation.ap, evaluation.videos, evaluation.snippets, config.source
            );
            Ok(())
        }
        #[cfg(feature = "gst")]
        MavdCommand::Bench {
            out,
            seconds,
            window,
        } => {
            let result = vigil::train::mavd::bench::run(
                Path::new("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"),
                Path::new("models/manifest.toml"),
                &out,
                seconds,
                window,
            )?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        #[cfg(feature = "gst")]
        MavdCommand::EdgeData {
            out,
            train_clips,
            validation_clips,
            test_clips,
            clip_seconds,
            seed,
            threads,
            rgb_model,
        } => {
            use vigil::train::mavd::edge_data::{EdgeDataConfig, make_edge_data};
            let config = EdgeDataConfig::new()
                .with_train_clips(train_clips)
                .with_validation_clips(validation_clips)
                .with_test_clips(test_clips)
                .with_clip_seconds(clip_seconds)
                .with_seed(seed)
                .with_threads(threads);
            let paths = vigil::models::violence::staging::MaterialPaths::debian(Path::new("."));
            for split in make_edge_data(
                &paths,
                Path::new("models/manifest.toml"),
                &rgb_model,
                &out,
                &config,
            )? {
                println!(
                    "{}: {} clips ({} violent), {} snippets, {} of {} frames violent",
                    split.folder.display(),
                    split.clips,
                    split.violent_clips,
                    split.snippets,
                    split.violent_frames,
                    split.frames
                );
            }
            Ok(())
        }
        MavdCommand::Export { run, window, out } => {
            let device = burn::tensor::Device::flex();
            let (mavd, config) = train::load_run(&run, &device)?;
            let worst =
                vigil::train::mavd::export::write_window(&mavd, &config.train.model, window, &out)?;
            println!(
                "{}: a window of {window} snippets; burn and tract agree to {worst:.1e}",
                out.display()
            );
            Ok(())
        }
    }
}

fn run_fers(command: FersCommand) -> Result<()> {
    match command {
        FersCommand::Export { run, install } => {
            use vigil::train::fers::pipeline;
            let run = RunDir::open(&run)?;
            let record = pipeline::export(&run)?;
            println!(
                "{} and {}: parity {:.1e}, int8 changes the maps by {:.1e} of their range; {} int8 layers; one {}×{} tile in {:.1} ms fp32, {:.1} ms int8",
                record.fp32.display(),
                record.int8.display(),
                record.parity_relative,
                record.int8_relative,
                record.quantized_layers,
                record.tile,
                record.tile,
                record.fp32_ms,
                record.int8_ms
            );
            if let Some(models) = install {
                for target in pipeline::install(&run, &models)? {
                    println!("installed {}", target.display());
                }
            }
            Ok(())
        }
        FersCommand::Eval { run, scenes } => {
            use vigil::train::fers::pipeline;
            let run = RunDir::open(&run)?;
            let results = pipeline::evaluate(&run, &scenes)?;
            let record: pipeline::ExportRecord = run.read_json("export.json")?;
            print!("{}", pipeline::card_table(record.bands, &results));
            Ok(())
        }
        FersCommand::Train {
            data,
            sources,
            validation,
            out,
            bands,
            ferd_epochs,
            student_epochs,
            batch_size,
            seed,
            mobilenet,
            backend,
        } => {
            use vigil::train::fers::model::FersEdgeConfig;
            use vigil::train::fers::train::{FersTrainConfig, train};
            let config = FersTrainConfig::new(FersEdgeConfig::new(bands))
                .with_ferd_epochs(ferd_epochs)
                .with_student_epochs(student_epochs)
                .with_batch_size(batch_size)
                .with_seed(seed);
            let summary = train(
                &data,
                &sources,
                &validation,
                &mobilenet,
                &out,
                backend,
                config,
            )?;
            println!(
                "{}: FERD epoch {} (validation AUC {:.4}), student epoch {} ({:.4}); RX alone {:.4}; {:.0} s",
                out.display(),
                summary.ferd_best_epoch,
                summary.ferd_validation_auc,
                summary.student_best_epoch,
                summary.student_validation_auc,
                summary.rx_validation_auc,
                summary.seconds
            );
            Ok(())
        }
        FersCommand::MakeData {
            out,
            library,
            train,
            test,
            size,
            bands,
            targets,
            fill,
            background,
            target,
            sensor,
            seed,
            real_scenes,
            hold_out,
            real_patch,
        } => {
            use vigil::hsi::had100::{SyntheticSet, make_synthetic};
            use vigil::hsi::library::SpectralLibrary;
            use vigil::hsi::synthetic::SceneConfig;
            let library = SpectralLibrary::read_envi(&library).with_context(|| {
                format!(
                    "cannot read {} (scripts/fetch-spectra.sh fetches it)",
                    library.display()
                )
            })?;
            let first = library.wavelengths.first().copied().unwrap_or_default();
            let last = library.wavelengths.last().copied().unwrap_or_default();
            let set = SyntheticSet {
                scene: SceneConfig {
                    rows: size,
                    cols: size,
                    bands,
                    targets,
                    target_fraction: fill,
                    // The library's full range, sampled evenly like an imaging spectrometer.
                    wavelength_range: (first, last),
                    seed,
                    ..SceneConfig::default()
                },
                train_scenes: train,
                test_scenes: test,
                background_class: background,
                target_class: target,
                sensor,
            };
            make_synthetic(&out, &library, &set)?;
            if let Some(dir) = real_scenes {
                let scenes = vigil::hsi::had100::labelled_scenes_in(&dir)?;
                let written = vigil::hsi::had100::write_background_patches(
                    &out, "real", &scenes, &hold_out, real_patch, bands,
                )?;
                for (stem, count) in &written {
                    println!("{stem}: {count} background patches");
                }
                if !hold_out.is_empty() {
                    println!("held out for evaluation: {}", hold_out.join(", "));
                }
            }
            println!(
                "{}: {train} training and {test} test scenes of {size}×{size}×{bands} ({first:.0}–{last:.0} nm) from {} spectra",
                out.display(),
                library.materials.len()
            );
            Ok(())
        }
    }
}

fn run_audio_events(command: AudioEventsCommand) -> Result<()> {
    use vigil::train::audio_events::{MakeDataOptions, devset::Part, make_data};
    match command {
        AudioEventsCommand::MakeData {
            sources,
            list,
            out,
            parts,
            minutes,
            recording_minutes,
            snr_db,
            seed,
            max_repeats,
            background_minutes,
        } => {
            let parts = parts
                .iter()
                .map(|p| {
                    Part::parse(p.trim()).with_context(|| {
                        format!("--parts: unknown part {p:?} (train, validation, test)")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut options = MakeDataOptions::new(sources, list, out);
            options.parts = parts;
            options.minutes = minutes;
            options.recording_s = recording_minutes * 60.0;
            options.snr_db = snr_db;
            options.seed = seed;
            options.max_repeats = max_repeats;
            options.background_minutes = background_minutes;
            let started = std::time::Instant::now();
            let summaries = make_data(&options)?;
            for summary in &summaries {
                print!("{}", summary.render());
            }
            println!(
                "wrote {} parts under {} in {:.0} s",
                summaries.len(),
                options.out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        AudioEventsCommand::Fit {
            data,
            out,
            labels,
            false_alarms_per_hour,
            hidden,
            epochs,
            learning_rate,
            seed,
            backend,
            patch_hop_frames,
            install,
        } => {
            use vigil::train::event_head::{fit, head::HeadTrainConfig};
            let test = data.join("test");
            let config = fit::FitConfig {
                train: data.join("train"),
                validation: data.join("validation"),
                test: test.is_dir().then_some(test),
                out,
                labels,
                budget_per_hour: false_alarms_per_hour,
                hidden,
                head: HeadTrainConfig::new()
                    .with_epochs(epochs)
                    .with_learning_rate(learning_rate)
                    .with_seed(seed),
                backend,
                yamnet: "yamnet".into(),
                patch_hop_frames,
            };
            let manifest = vigil::detector::Manifest::shipped()?;
            let summary = fit::fit(&manifest, &config)?;
            print!("{}", fit::render(&summary));
            println!("run folder {}", summary.run.display());
            if let Some(models) = install {
                let manifest = fit::install(&summary, &config.yamnet, &models)?;
                println!(
                    "installed model {} in {}; the profile section is {}",
                    fit::MODEL_NAME,
                    manifest.display(),
                    summary.run.join("audio_events.toml").display()
                );
            }
            Ok(())
        }
    }
}
