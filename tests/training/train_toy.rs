//! The whole training chain on the toy family, on the CPU (flex) backend: train, resume,
//! export with burn↔tract parity, quantize to int8 kernels, evaluate through the runtime's
//! tract path with the threshold written into the manifest. Plus the bad inputs.

use std::path::Path;

use vigil::detector::Manifest;
use vigil::detector::inspect::{Arithmetic, inspect};
use vigil::train::TrainError;
use vigil::train::backend::BackendKind;
use vigil::train::run::RunDir;
use vigil::train::toy::ToyNetConfig;
use vigil::train::toy::data::make_data_folder;
use vigil::train::toy::pipeline::{evaluate_run, export, quantize_run};
use vigil::train::toy::train::{ToyTrainConfig, resume, train};

/// burn's seeded generator is process-wide: trainings in parallel test threads would draw from
/// each other's streams and break the reproducibility this file checks.
static ONE_TRAINING_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn config(epochs: usize) -> ToyTrainConfig {
    ToyTrainConfig::new(ToyNetConfig::new())
        .with_epochs(epochs)
        .with_batch_size(32)
        .with_seed(3)
}

#[test]
fn toy_trains_exports_quantizes_and_evaluates() -> Result<(), TrainError> {
    let _serial = serial();
    let scratch = tempfile::tempdir().map_err(|e| TrainError::Config(e.to_string()))?;
    let data = scratch.path().join("data");
    make_data_folder(&data, [800, 200, 200], 16, 11)?;

    // Three epochs straight, and two then a resume to three: the same run.
    let straight = train(
        &data,
        &scratch.path().join("straight"),
        BackendKind::Flex,
        config(3),
    )?;
    let split_run = scratch.path().join("resumed");
    train(&data, &split_run, BackendKind::Flex, config(2))?;
    let resumed = resume(&split_run, None, Some(3))?;
    assert_eq!((straight.epochs_done, resumed.epochs_done), (3, 3));
    let rows_a = RunDir::open(&straight.run)?.read_metrics()?;
    let rows_b = RunDir::open(&split_run)?.read_metrics()?;
    assert_eq!(
        rows_b.len(),
        3,
        "a resumed run keeps one metrics row per epoch"
    );
    for (a, b) in rows_a.iter().zip(&rows_b) {
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-3,
            "epoch {}: {} vs {} after resume",
            a.epoch,
            a.train_loss,
            b.train_loss
        );
    }
    assert!(
        straight.val_auroc > 0.9,
        "toy net did not learn: AUROC {}",
        straight.val_auroc
    );
    for file in [
        "config.json",
        "metrics.csv",
        "model.bpk",
        "checkpoint/state.json",
    ] {
        assert!(straight.run.join(file).is_file(), "{file} missing");
    }

    let run = RunDir::open(&straight.run)?;
    let parity = export(&run, 8)?;
    assert!(
        parity.max_abs_diff <= 1e-4 && parity.max_abs_value > 0.5,
        "{parity:?}"
    );

    let record = quantize_run(&run, 128)?;
    assert_eq!(
        record.layers, 8,
        "embed, Q, K, V, attention output, fc1, fc2, head"
    );
    assert!(
        record.auroc_lost.abs() < 0.02,
        "int8 lost {} AUROC",
        record.auroc_lost
    );
    let written = Manifest::load(&run.file("manifest.toml"))
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let quantization = written
        .model("toy")
        .map_err(|e| TrainError::Config(e.to_string()))?
        .settings
        .get("quantization")
        .and_then(|q| q.get("speedup"))
        .and_then(toml::Value::as_float);
    assert!(
        quantization.is_some_and(|s| s > 0.0),
        "quantize writes its facts into the manifest"
    );
    let int8 = run.file("model-int8.onnx");
    let report = inspect(&int8.display().to_string(), None)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let int8_kernels = report
        .ops
        .iter()
        .filter(|op| op.arithmetic == Arithmetic::Int8Kernel)
        .count();
    assert_eq!(
        int8_kernels, 8,
        "every linear layer must run on an int8 kernel"
    );

    let evaluation = evaluate_run(&run, None)?;
    assert!(evaluation.test.roc_auc > 0.9);
    let manifest = Manifest::load(&run.file("manifest.toml"))
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let spec = manifest
        .model("toy")
        .map_err(|e| TrainError::Config(e.to_string()))?;
    assert!((f64::from(spec.threshold) - evaluation.threshold).abs() < 1e-6);
    assert!(spec.settings.contains_key("quantization"));
    Ok(())
}

#[test]
fn bad_data_folders_are_named_errors_and_leave_no_run() {
    let _serial = serial();
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = scratch.path().join("run");
    let missing = train(
        &scratch.path().join("nope"),
        &out,
        BackendKind::Flex,
        config(1),
    );
    let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("nope") && message.contains("does not exist"),
        "{message}"
    );
    assert!(!out.exists(), "a failed start must not leave a run folder");

    let data = scratch.path().join("data");
    make_data_folder(&data, [20, 10, 10], 16, 1).expect("data");
    std::fs::write(data.join("val/images.npy"), b"not numpy").expect("write");
    let broken = train(&data, &out, BackendKind::Flex, config(1));
    let message = broken.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&Path::new("val").join("images.npy").display().to_string()),
        "{message}"
    );
}

#[test]
fn runs_are_not_overwritten_and_resume_needs_a_run() {
    let _serial = serial();
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    make_data_folder(&data, [64, 32, 32], 16, 2).expect("data");
    let out = scratch.path().join("run");
    train(&data, &out, BackendKind::Flex, config(1)).expect("first run");
    let again = train(&data, &out, BackendKind::Flex, config(1));
    assert!(
        again
            .err()
            .is_some_and(|e| e.to_string().contains("--resume"))
    );
    let nothing = resume(&scratch.path().join("absent"), None, None);
    assert!(
        nothing
            .err()
            .is_some_and(|e| e.to_string().contains("config.json"))
    );
}

/// Built with `cuda` on a GPU machine, `--backend cuda` trains; scripts/gpu-check.sh covers that.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let _serial = serial();
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    make_data_folder(&data, [16, 8, 8], 16, 2).expect("data");
    let result = train(
        &data,
        &scratch.path().join("run"),
        BackendKind::Cuda,
        config(1),
    );
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    // Built without `cuda` (CI): says how to rebuild. With it but no GPU: says what is missing.
    assert!(
        message.contains("--features cuda")
            || message.contains("CUDA")
            || message.contains("libcuda"),
        "{message}"
    );
}
