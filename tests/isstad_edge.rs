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
    let evaluation = evaluate(&run).unwrap();
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
    let again = evaluate(&run).unwrap();
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
