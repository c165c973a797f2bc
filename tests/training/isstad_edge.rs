//! ISSTAD-edge end to end on the tiny configuration: make an MVTec-layout category from the
//! real brick texture, train both stages on its normal images, export (checked against burn),
//! quantize, evaluate on the held-out defects, and find a planted defect with the int8 graph
//! and the runtime's anomaly map; evaluate the same run again with the masks removed, as an
//! image-level-only category. Then the bad inputs.

use std::path::{Path, PathBuf};

use vigil::models::industrial::anomaly_map::{AnomalyMapper, ImageScore};
use vigil::train::backend::BackendKind;
use vigil::train::image::{Crop, Rgb8, normalised_chw, read_png};
use vigil::train::isstad::corrupt::CorruptionConfig;
use vigil::train::isstad::make_data::{MakeDataConfig, make_category};
use vigil::train::isstad::model::IsstadConfig;
use vigil::train::isstad::mvtec::read_category;
use vigil::train::isstad::pipeline::{evaluate, export};
use vigil::train::isstad::train::{IsstadTrainConfig, NormalImages, train};
use vigil::train::onnx;
use vigil::train::parity::{plan, run_plan_outputs};
use vigil::train::run::RunDir;

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The fetched brick texture; a missing texture fails the test rather than passing it unrun.
fn brick() -> Rgb8 {
    let path = repo("models/cache/textures/brick.png");
    assert!(
        path.exists(),
        "{} is absent: the test command fetches it (scripts/fetch-photos.sh)",
        path.display()
    );
    read_png(&path).unwrap()
}

fn tiny_config() -> IsstadTrainConfig {
    IsstadTrainConfig::new(IsstadConfig::tiny(), CorruptionConfig::new())
        .with_mae_epochs(6)
        .with_mae_warmup_epochs(1)
        .with_pixel_epochs(30)
        .with_batch_size(8)
}

/// A dark blotch, like a hole, of `side` pixels at (x, y).
fn plant_hole(image: &mut Rgb8, x: usize, y: usize, side: usize) {
    for row in y..y + side {
        for col in x..x + side {
            let dx = col as f64 - (x as f64 + side as f64 / 2.0);
            let dy = row as f64 - (y as f64 + side as f64 / 2.0);
            if dx * dx + dy * dy <= (side as f64 / 2.0).powi(2) {
                let at = (row * image.width + col) * 3;
                image.pixels[at..at + 3].copy_from_slice(&[12, 10, 9]);
            }
        }
    }
}

#[test]
fn tiny_isstad_trains_exports_quantizes_and_finds_a_planted_defect() {
    let texture = brick();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("brick");
    let make = MakeDataConfig {
        side: 64,
        train_good: 48,
        test_good: 6,
        test_per_defect: 2,
        ..MakeDataConfig::default()
    };
    make_category(&texture, &data, &make).unwrap();
    let category = read_category(&data).unwrap();
    let (training, validation) = category.split_validation(6).unwrap();
    let training = NormalImages::read(training).unwrap();
    let validation = NormalImages::read(validation).unwrap();
    let run_path = dir.path().join("run");
    let summary = train(
        &data,
        &training,
        &validation,
        &run_path,
        BackendKind::Flex,
        tiny_config(),
        None,
    )
    .unwrap();
    assert!(summary.pixel_validation_auroc > 0.5, "{summary:?}");

    let run = RunDir::open(&run_path).unwrap();
    let record = export(&run).unwrap();
    assert!(record.parity_relative < 1e-4, "{record:?}");
    assert!(
        record.quantized_layers > 0 && record.int8_relative < 0.1,
        "{record:?}"
    );
    let evaluation = evaluate(&run, None).unwrap();
    for result in [&evaluation.fp32, &evaluation.int8] {
        assert!(result.pixel_auroc.unwrap() > 0.6, "{evaluation:?}");
        assert!(result.aupro.is_some(), "{evaluation:?}");
        assert!(
            result.rules.iter().all(|r| r.threshold.is_finite())
                && result.pixel_threshold.is_finite()
        );
    }
    assert!(run.file("eval.md").exists());

    // The same set labelled per image only (no ground_truth folder, as a plant's good and
    // rejected folders are): the image metrics are unchanged, the pixel metrics are not
    // computed, and the card says so.
    std::fs::remove_dir_all(data.join("ground_truth")).unwrap();
    let image_level = read_category(&data).unwrap();
    assert!(!image_level.pixel_labels);
    assert!(image_level.test.iter().all(|t| t.mask.is_none()));
    let again = evaluate(&run, None).unwrap();
    assert_eq!(again.test_images, evaluation.test_images);
    for (before, after) in [
        (&evaluation.fp32, &again.fp32),
        (&evaluation.int8, &again.int8),
    ] {
        assert_eq!((after.pixel_auroc, after.aupro), (None, None));
        for (b, a) in before.rules.iter().zip(&after.rules) {
            assert_eq!((b.image_auroc, b.threshold), (a.image_auroc, a.threshold));
            assert_eq!(b.per_defect_image_auroc, a.per_defect_image_auroc);
        }
    }
    let card = std::fs::read_to_string(run.file("eval.md")).unwrap();
    assert!(
        card.contains("n/a") && card.contains("No ground-truth masks"),
        "{card}"
    );

    // A planted hole in an unseen normal image: the int8 map must peak inside it.
    let good = category.test.iter().find(|t| t.is_good()).unwrap();
    let mut image = read_png(&good.image).unwrap();
    let (x, y, side) = (20, 28, 14);
    plant_hole(&mut image, x, y, side);
    let input = normalised_chw(&image, Crop::whole(image.width, image.height), 64, false);
    let graph = plan(&onnx::load(&record.int8).unwrap()).unwrap();
    let outputs = run_plan_outputs(&graph, &[1, 3, 64, 64], &input).unwrap();
    let mut mapper = AnomalyMapper::new(4.0, ImageScore::Mean).unwrap();
    let mut map = vec![0.0f32; 64 * 64];
    mapper.map(&outputs[0], &outputs[1], 64, &mut map).unwrap();
    let (peak, _) =
        map.iter().enumerate().fold(
            (0, f32::MIN),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        );
    let (px, py) = (peak % 64, peak / 64);
    // The 64×64 image maps one to one onto the map; allow the blur's reach around the hole.
    let margin = 6;
    assert!(
        px + margin >= x && px < x + side + margin && py + margin >= y && py < y + side + margin,
        "map peak at ({px}, {py}), hole at ({x}, {y}) size {side}"
    );
}

#[test]
fn bad_training_inputs_are_refused_before_a_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let one = Rgb8 {
        width: 64,
        height: 64,
        pixels: vec![128; 64 * 64 * 3],
    };
    let some = NormalImages {
        files: vec![dir.path().join("a.png")],
        images: vec![one],
    };
    let none = NormalImages {
        files: vec![],
        images: vec![],
    };
    let config = tiny_config();
    let err = train(
        dir.path(),
        &some,
        &none,
        &run_path,
        BackendKind::Flex,
        config.clone(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("0 validation images"), "{err}");
    let mut bad_model = config.clone();
    bad_model.model = IsstadConfig::tiny().with_image_size(60);
    let err = train(
        dir.path(),
        &some,
        &some,
        &run_path,
        BackendKind::Flex,
        bad_model,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("image_size 60"), "{err}");
    assert!(!run_path.exists());

    // A folder that is not an MVTec category, and a truncated PNG, name what is wrong.
    let err = read_category(dir.path()).unwrap_err().to_string();
    assert!(err.contains("train/good"), "{err}");
    let truncated = dir.path().join("cut.png");
    std::fs::write(&truncated, [0x89, b'P', b'N', b'G', 0x0d, 0x0a]).unwrap();
    let err = NormalImages::read(vec![truncated.clone()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.png"), "{err}");
}

/// ISSTAD's stage 2 on the frozen ImageNet MobileNetV2, the way a plant runs it:
/// `industrial fit --method isstad` on a folder of good parts, `industrial eval` (export,
/// thresholds from the held-out good images, fp32 and int8) and install, then the runtime's
/// factory-line stages on held-out good frames and on a defect. One epoch on 8 images keeps it
/// short; what is checked is the path, not the quality the card reports.
#[test]
fn isstad_on_the_pretrained_encoder_fits_evaluates_installs_and_runs() {
    use vigil::capture::{Sample, Stamp, VideoFrame};
    use vigil::detector::{Manifest, Plan};
    use vigil::models::industrial::{IndustrialDecide, IndustrialDetector, IndustrialSettings};
    use vigil::pipeline::{Decide, Detect, Prepare};
    use vigil::train::industrial::fit::ValidationSource;
    use vigil::train::industrial::isstad::{IsstadFitConfig, fit, is_isstad_run};
    use vigil::train::isstad::pipeline::install;

    let weights = repo("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth");
    assert!(
        weights.exists(),
        "{} is absent: the test command fetches it (scripts/fetch-mobilenet.sh)",
        weights.display()
    );
    let texture = brick();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("brick");
    let make = MakeDataConfig {
        side: 224,
        train_good: 8,
        validation_good: 4,
        test_good: 3,
        test_per_defect: 1,
        ..MakeDataConfig::default()
    };
    make_category(&texture, &data, &make).unwrap();
    let config = IsstadFitConfig {
        data: data.clone(),
        weights: weights.clone(),
        validation: None,
        validation_every: 5,
        encoder: vigil::train::isstad::model::EncoderKind::MobileNetV2,
        mae_epochs: 0,
        epochs: 1,
        batch_size: 4,
        seed: 1,
        backend: BackendKind::Flex,
    };
    let run_path = dir.path().join("run");
    let done = fit(&config, &run_path).unwrap();
    assert_eq!((done.train_images, done.validation_images), (8, 4));
    assert_eq!(
        done.validation_source,
        ValidationSource::Folder(data.join("validation/good"))
    );
    assert_eq!(
        done.summary.mae_best_epoch, None,
        "no stage 1 on a pretrained encoder"
    );
    let run = RunDir::open(&run_path).unwrap();
    assert!(is_isstad_run(&run).unwrap());

    let record = export(&run).unwrap();
    assert!(record.parity_relative < 1e-4, "{record:?}");
    assert!(record.quantized_layers > 0, "{record:?}");
    let evaluation = evaluate(&run, None).unwrap();
    assert_eq!((evaluation.test_images, evaluation.good_images), (8, 3));
    assert_eq!(evaluation.validation_images, 4);
    for result in [&evaluation.fp32, &evaluation.int8] {
        assert!(
            result.pixel_auroc.is_some_and(f64::is_finite),
            "{evaluation:?}"
        );
        assert!(result.rules.iter().all(|r| r.threshold.is_finite()));
    }
    let models = dir.path().join("models");
    let installed = install(&run, &models, false).unwrap();
    assert!(
        installed[0].ends_with("isstad-edge/isstad-mobilenet-brick.onnx"),
        "{installed:?}"
    );

    // The runtime reads the installed graph as any ISSTAD model and scores a held-out good
    // part below the threshold fitted on those parts.
    let manifest = Manifest::load(&models.join("manifest.toml")).unwrap();
    let plan = Plan::load(&manifest, "isstad-mobilenet-brick").unwrap();
    let mut detect = IndustrialDetector::new(&plan, &manifest.dir).unwrap();
    let spec = detect.spec();
    let settings = IndustrialSettings {
        capture_width: 224,
        capture_height: 224,
        ..IndustrialSettings::default()
    };
    let mut prepare = spec.prepare(&settings).unwrap();
    let mut decide = IndustrialDecide::new("line1", &spec, &settings, None).unwrap();
    let mut alerts = Vec::new();
    let validation: Vec<PathBuf> = run
        .read_json::<vigil::train::isstad::train::IsstadRunConfig>("config.json")
        .unwrap()
        .validation_files;
    for (seq, path) in validation.iter().enumerate() {
        let image = read_png(path).unwrap();
        let frame = VideoFrame {
            stamp: Stamp {
                pts: std::time::Duration::from_millis(seq as u64 * 100),
                captured_at: std::time::SystemTime::now(),
                seq: seq as u64,
            },
            width: 224,
            height: 224,
            rgb: image.pixels,
        };
        let mut inputs = Vec::new();
        prepare
            .prepare(&Sample::Video(frame), &mut |stamp, input| {
                inputs.push((stamp, input))
            })
            .unwrap();
        for (stamp, input) in inputs {
            let maps = detect.detect(input).unwrap();
            decide.decide(stamp, maps, &mut |a| alerts.push(a));
            let score = decide.scores()[0].1;
            assert!(score.is_finite() && f64::from(score) <= evaluation.int8.rules[0].threshold);
        }
    }
    decide.finish(&mut |a| alerts.push(a));
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn the_pretrained_fit_refuses_bad_folders_before_a_run_folder_exists() {
    use vigil::train::industrial::isstad::{IsstadFitConfig, fit};
    let dir = tempfile::tempdir().unwrap();
    // Good parts smaller than the 224² input: named, not upscaled.
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..6 {
        vigil::io::png::write_rgb(
            &small.join(format!("{i}.png")),
            64,
            64,
            &vec![90; 64 * 64 * 3],
        )
        .unwrap();
    }
    let config = IsstadFitConfig {
        data: small.clone(),
        weights: repo("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"),
        validation: None,
        validation_every: 5,
        encoder: vigil::train::isstad::model::EncoderKind::MobileNetV2,
        mae_epochs: 0,
        epochs: 1,
        batch_size: 4,
        seed: 1,
        backend: BackendKind::Flex,
    };
    let run_path = dir.path().join("run");
    let err = fit(&config, &run_path).unwrap_err().to_string();
    assert!(
        err.contains("smaller than the model's 224×224") && err.contains("0.png"),
        "{err}"
    );
    assert!(!run_path.exists());
    // Weights that are not torchvision's MobileNetV2 (here not a checkpoint at all).
    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..6 {
        vigil::io::png::write_rgb(
            &big.join(format!("{i}.png")),
            224,
            224,
            &vec![90; 224 * 224 * 3],
        )
        .unwrap();
    }
    let bogus = dir.path().join("weights.pth");
    std::fs::write(&bogus, b"not a checkpoint").unwrap();
    let config = IsstadFitConfig {
        data: big,
        weights: bogus,
        ..config
    };
    let err = fit(&config, &run_path).unwrap_err().to_string();
    assert!(err.contains("weights.pth"), "{err}");
    assert!(!run_path.exists());
}
