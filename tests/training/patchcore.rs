//! PatchCore from a folder of good parts to alerts: `vigil-train industrial fit` on a small
//! category cut from scikit-image's real brick photo (fetched by `scripts/fetch-photos.sh`;
//! this test fails without it), `eval` and `--install` into a models folder, then the runtime's
//! factory-line stages on camera frames, with and without a region of interest; then every
//! bad input the fit and the runtime must refuse by name.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vigil::alert::{Alert, Phase};
use vigil::capture::{Sample, Stamp, VideoFrame};
use vigil::detector::{Manifest, Plan};
use vigil::io::png::{read_png, write_rgb};
use vigil::models::industrial::patchcore::bank::MemoryBank;
use vigil::models::industrial::{
    IndustrialDecide, IndustrialDetector, IndustrialPrepare, IndustrialSettings, Region,
};
use vigil::pipeline::{Decide, Detect, Prepare};
use vigil::train::industrial::coreset::CoresetConfig;
use vigil::train::industrial::evaluate::{evaluate, install};
use vigil::train::industrial::fit::{FitConfig, ValidationSource, fit};
use vigil::train::isstad::make_data::{MakeDataConfig, Orientations, make_category};
use vigil::train::run::RunDir;

const SIDE: usize = 224;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn backbone() -> PathBuf {
    repo("models/patchcore/mobilenet_v2_patch_features.onnx")
}

/// A small brick category: 16 training, 6 validation, 6 good and 2 per defect type for test.
fn category(dir: &Path) -> PathBuf {
    let texture_path = repo("models/cache/textures/brick.png");
    let texture = read_png(&texture_path).unwrap_or_else(|err| {
        panic!("{err}: run scripts/fetch-photos.sh (this test needs the real texture)")
    });
    let config = MakeDataConfig {
        side: SIDE,
        train_good: 16,
        test_good: 6,
        test_per_defect: 2,
        validation_good: 6,
        orientations: Orientations::MirrorLeftRight,
        seed: 3,
        ..MakeDataConfig::default()
    };
    let root = dir.join("brick");
    make_category(&texture, &root, &config).unwrap();
    root
}

fn fit_config(data: &Path) -> FitConfig {
    FitConfig {
        coreset: CoresetConfig {
            fraction: 0.1,
            ..CoresetConfig::default()
        },
        ..FitConfig::new(data.to_path_buf(), backbone())
    }
}

fn video_frame(seq: u64, width: usize, height: usize, rgb: Vec<u8>) -> VideoFrame {
    VideoFrame {
        stamp: Stamp {
            pts: Duration::from_millis(seq * 100),
            captured_at: SystemTime::now(),
            seq,
        },
        width: width as u32,
        height: height as u32,
        rgb,
    }
}

/// `image` pasted at (`x`, `y`) into a mid-grey frame of `width`×`height`.
fn framed(image: &Path, seq: u64, width: usize, height: usize, x: usize, y: usize) -> VideoFrame {
    let part = read_png(image).unwrap();
    let mut rgb = vec![128u8; width * height * 3];
    for row in 0..part.height {
        let from = &part.pixels[row * part.width * 3..(row + 1) * part.width * 3];
        let at = ((y + row) * width + x) * 3;
        rgb[at..at + from.len()].copy_from_slice(from);
    }
    video_frame(seq, width, height, rgb)
}

struct Stages {
    prepare: IndustrialPrepare,
    detect: IndustrialDetector,
    decide: IndustrialDecide,
}

fn stages(manifest: &Manifest, model: &str, settings: &IndustrialSettings) -> Stages {
    let plan = Plan::load(manifest, model).unwrap();
    let detect = IndustrialDetector::new(&plan, &manifest.dir).unwrap();
    let spec = detect.spec();
    Stages {
        prepare: spec.prepare(settings).unwrap(),
        decide: IndustrialDecide::new("line1", &spec, settings, None).unwrap(),
        detect,
    }
}

/// Runs frames through the stages; returns the alerts and each frame's score.
fn run(stages: &mut Stages, frames: &[VideoFrame]) -> (Vec<Alert>, Vec<f32>) {
    let (mut alerts, mut scores) = (Vec::new(), Vec::new());
    for frame in frames {
        let mut inputs = Vec::new();
        stages
            .prepare
            .prepare(&Sample::Video(frame.clone()), &mut |stamp, input| {
                inputs.push((stamp, input))
            })
            .unwrap();
        for (stamp, input) in inputs {
            let maps = stages.detect.detect(input).unwrap();
            stages.decide.decide(stamp, maps, &mut |a| alerts.push(a));
            scores.push(stages.decide.scores()[0].1);
        }
    }
    stages.decide.finish(&mut |a| alerts.push(a));
    (alerts, scores)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn fit_eval_install_and_run_on_a_brick_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = category(dir.path());
    let run_dir = dir.path().join("run");
    let record = fit(&fit_config(&data), &run_dir).unwrap();
    // make-data's validation folder holds the thresholds' images, disjoint from the bank's.
    assert_eq!(
        record.validation_source,
        ValidationSource::Folder(data.join("validation/good"))
    );
    assert_eq!(
        (record.train_images.len(), record.validation_images.len()),
        (16, 6)
    );
    assert_eq!(record.candidates, 16 * 28 * 28);
    assert_eq!(record.bank_patches, (16 * 28 * 28) / 10 + 1);
    let t = &record.thresholds;
    assert!(t.validation_scores.iter().all(|&s| s < t.image), "{t:?}");
    assert!(t.pixel.is_finite() && t.pixel > 0.0);
    let bank = MemoryBank::read(&run_dir.join("bank.bank")).unwrap();
    assert_eq!(bank.header.patches, record.bank_patches);
    assert_eq!(bank.header.feature_dim, 32 + 96);

    let fitted = RunDir::open(&run_dir).unwrap();
    let evaluation = evaluate(&fitted, None).unwrap();
    assert_eq!((evaluation.good_images, evaluation.defect_images), (6, 10));
    // Holes and contamination are plain to any detector that works at all; the bank of 16
    // images must rank them above every good test image.
    for defect in ["hole", "contamination"] {
        let result = evaluation
            .per_defect
            .iter()
            .find(|d| d.defect == defect)
            .unwrap();
        assert_eq!(result.image_auroc, 1.0, "{defect}: {evaluation:?}");
    }
    assert!(evaluation.pixel_auroc.unwrap() > 0.9, "{evaluation:?}");
    assert!(run_dir.join("eval.md").is_file());

    let models = dir.path().join("models");
    let name = install(&fitted, &models).unwrap();
    assert_eq!(name, "patchcore-brick");
    let manifest = Manifest::load(&models.join("manifest.toml")).unwrap();
    let spec = manifest.model(&name).unwrap();
    assert_eq!(spec.family, "patchcore");
    assert_eq!(spec.threshold, t.image as f32);
    assert_eq!(
        spec.settings.get("part_size").map(ToString::to_string),
        Some("[224, 224]".to_string())
    );

    // The runtime: held-out good parts raise nothing, a hole raises one event with a box on it.
    let settings = IndustrialSettings {
        capture_width: SIDE as u32,
        capture_height: SIDE as u32,
        min_box_area: 4,
        ..IndustrialSettings::default()
    };
    let good: Vec<VideoFrame> = record
        .validation_images
        .iter()
        .enumerate()
        .map(|(i, path)| framed(path, i as u64, SIDE, SIDE, 0, 0))
        .collect();
    let mut line = stages(&manifest, &name, &settings);
    let (alerts, good_scores) = run(&mut line, &good);
    assert!(alerts.is_empty(), "{alerts:#?}");
    for (score, fitted) in good_scores.iter().zip(&t.validation_scores) {
        // The runtime scores a frame exactly as the fit scored the file.
        assert!(
            (f64::from(*score) - fitted).abs() < 1e-4,
            "{score} vs {fitted}"
        );
    }
    let holes = files_in(&data.join("test/hole"));
    let frames: Vec<VideoFrame> = (0..3)
        .map(|i| framed(&holes[0], i, SIDE, SIDE, 0, 0))
        .collect();
    let mut line = stages(&manifest, &name, &settings);
    let (alerts, _) = run(&mut line, &frames);
    assert_eq!(
        alerts.first().map(|a| a.phase),
        Some(Phase::New),
        "{alerts:#?}"
    );
    assert_eq!(alerts.last().map(|a| a.phase), Some(Phase::End));
    let boxes = &alerts[0].regions;
    assert!(!boxes.is_empty(), "{alerts:#?}");

    // A 640×480 camera whose region frames the part at its fitted scale: the same scores, and
    // boxes in frame pixels inside the region.
    let (x, y) = (300, 150);
    let region = Region {
        x: x as u32,
        y: y as u32,
        width: SIDE as u32,
        height: SIDE as u32,
    };
    let in_region = IndustrialSettings {
        region: Some(region),
        capture_width: 640,
        capture_height: 480,
        ..settings.clone()
    };
    in_region.validate().unwrap();
    let frames: Vec<VideoFrame> = (0..3)
        .map(|i| framed(&holes[0], i, 640, 480, x, y))
        .collect();
    let mut line = stages(&manifest, &name, &in_region);
    let (region_alerts, _) = run(&mut line, &frames);
    let placed = &region_alerts[0].regions;
    assert_eq!(placed.len(), boxes.len());
    for (inside, alone) in placed.iter().zip(boxes) {
        assert_eq!(
            (inside.x, inside.y),
            (alone.x + x as u32, alone.y + y as u32)
        );
        assert_eq!((inside.width, inside.height), (alone.width, alone.height));
    }

    // Two parts side by side in one 448×224 region, cut into tiles of the fitted part size:
    // two good parts raise nothing; a good part beside the holed one raises an event whose
    // boxes lie on the holed part.
    let two_parts = |left: &Path, right: &Path, seq: u64| {
        let (l, r) = (
            framed(left, seq, SIDE, SIDE, 0, 0),
            framed(right, seq, SIDE, SIDE, 0, 0),
        );
        let (width, height) = (640, 480);
        let mut rgb = vec![128u8; width * height * 3];
        for row in 0..SIDE {
            for (part, left_edge) in [(&l, 100), (&r, 100 + SIDE)] {
                let from = &part.rgb[row * SIDE * 3..(row + 1) * SIDE * 3];
                let at = ((120 + row) * width + left_edge) * 3;
                rgb[at..at + from.len()].copy_from_slice(from);
            }
        }
        video_frame(seq, width, height, rgb)
    };
    let tiled = IndustrialSettings {
        region: Some(Region {
            x: 100,
            y: 120,
            width: 2 * SIDE as u32,
            height: SIDE as u32,
        }),
        tiles: true,
        ..in_region.clone()
    };
    let good_pair: Vec<VideoFrame> = (0..3)
        .map(|i| {
            two_parts(
                &record.validation_images[0],
                &record.validation_images[1],
                i,
            )
        })
        .collect();
    let mut line = stages(&manifest, &name, &tiled);
    let (alerts, scores) = run(&mut line, &good_pair);
    assert!(alerts.is_empty(), "{alerts:#?}");
    // The frame's score is its worse tile's: the larger of the two parts' own scores.
    let expected = t.validation_scores[0].max(t.validation_scores[1]);
    assert!((f64::from(scores[0]) - expected).abs() < 1e-4, "{scores:?}");
    let holed_pair: Vec<VideoFrame> = (0..3)
        .map(|i| two_parts(&record.validation_images[0], &holes[0], i))
        .collect();
    let mut line = stages(&manifest, &name, &tiled);
    let (alerts, _) = run(&mut line, &holed_pair);
    assert_eq!(
        alerts.first().map(|a| a.phase),
        Some(Phase::New),
        "{alerts:#?}"
    );
    let right_part = 100 + SIDE as u32;
    assert!(!alerts[0].regions.is_empty(), "{alerts:#?}");
    for region in &alerts[0].regions {
        assert!(
            region.x + region.width / 2 >= right_part,
            "box {region:?} is not on the holed part"
        );
    }
}

#[test]
fn bad_folders_and_images_are_refused_by_name_before_a_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let refuse = |data: &Path| {
        let err = fit(&fit_config(data), &out).unwrap_err().to_string();
        assert!(!out.exists(), "a failed fit leaves no run folder: {err}");
        err
    };
    let err = refuse(&dir.path().join("absent"));
    assert!(
        err.contains("no good images") && err.contains("absent"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = refuse(&empty);
    assert!(err.contains("empty"), "{err}");

    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    write_rgb(&one.join("a.png"), SIDE, SIDE, &vec![90; SIDE * SIDE * 3]).unwrap();
    let err = refuse(&one);
    assert!(err.contains("one"), "{err}");

    // Enough images, but one is corrupt, then too small.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    for i in 0..6 {
        write_rgb(
            &mixed.join(format!("{i}.png")),
            SIDE,
            SIDE,
            &vec![(40 * i) as u8; SIDE * SIDE * 3],
        )
        .unwrap();
    }
    std::fs::write(mixed.join("3.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let err = refuse(&mixed);
    assert!(
        err.contains("3.png") && err.contains("not a readable PNG"),
        "{err}"
    );
    write_rgb(&mixed.join("3.png"), 100, 80, &vec![7; 100 * 80 * 3]).unwrap();
    let err = refuse(&mixed);
    assert!(
        err.contains("3.png") && err.contains("100×80, smaller than the model's 224×224"),
        "{err}"
    );
}

#[test]
fn a_bank_fitted_for_another_backbone_or_size_is_refused_naming_the_bank() {
    let dir = tempfile::tempdir().unwrap();
    let data = category(dir.path());
    let run_dir = dir.path().join("run");
    fit(&fit_config(&data), &run_dir).unwrap();
    let run = RunDir::open(&run_dir).unwrap();
    evaluate(&run, None).unwrap();
    let models = dir.path().join("models");
    let name = install(&run, &models).unwrap();
    let bank_path = models.join("patchcore").join(format!("{name}.bank"));
    let manifest_path = models.join("manifest.toml");
    let pristine = MemoryBank::read(&bank_path).unwrap();

    // Rewrites the bank's header, then the manifest's sha256 of it, so only the header's
    // claim is wrong.
    let tamper = |change: &dyn Fn(&mut MemoryBank)| {
        let mut bank = pristine.clone();
        change(&mut bank);
        bank.write(&bank_path).unwrap();
        let sha = vigil::detector::manifest::sha256_file(&bank_path).unwrap();
        let text = std::fs::read_to_string(&manifest_path).unwrap();
        let old = Manifest::load(&manifest_path)
            .unwrap()
            .model(&name)
            .unwrap()
            .files[1]
            .sha256
            .clone();
        std::fs::write(&manifest_path, text.replace(&old, &sha)).unwrap();
        let manifest = Manifest::load(&manifest_path).unwrap();
        let plan = Plan::load(&manifest, &name).unwrap();
        IndustrialDetector::new(&plan, &manifest.dir)
            .err()
            .unwrap()
            .to_string()
    };
    let err = tamper(&|bank| bank.header.backbone_sha256 = "0".repeat(64));
    assert!(
        err.contains("backbone (sha256)") && err.contains(&format!("{name}.bank")),
        "{err}"
    );
    let err = tamper(&|bank| bank.header.image_size = 256);
    assert!(
        err.contains("image size 256, but the model has 224"),
        "{err}"
    );
    // Another layer choice: the first tap only, its 32 channels per patch over four times
    // the rows (the same bytes).
    let err = tamper(&|bank| {
        bank.header.taps.truncate(1);
        bank.header.feature_dim = 32;
        bank.header.patches *= 4;
    });
    assert!(err.contains("feature layers"), "{err}");
}

#[test]
fn vigil_check_refuses_a_region_outside_the_frame_and_isstad_settings_on_patchcore() {
    let dir = tempfile::tempdir().unwrap();
    let check = |industrial: &str| {
        let text = format!(
            r#"
[box]
name = "test"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "file", path = "alerts.jsonl" }}]
[[stream]]
name = "line0"
model = "patchcore-brick"
source = {{ kind = "gstreamer", pipeline = "videotestsrc" }}
[stream.industrial]
capture_width = 640
capture_height = 480
{industrial}
"#
        );
        let profile = vigil::Profile::parse(&text, &dir.path().join("profile.toml")).unwrap();
        vigil::runtime::check(&profile).map_err(|err| err.to_string())
    };
    // The shipped model and a region inside the frame pass.
    check("region = { x = 208, y = 128, width = 224, height = 224 }").unwrap();
    let err = check("region = { x = 500, y = 128, width = 224, height = 224 }").unwrap_err();
    assert!(
        err.contains("stream line0")
            && err.contains(
                "industrial.region = 224×224 at (500, 128): must lie inside the 640×480 frame"
            ),
        "{err}"
    );
    // Tiles of the fitted part size.
    check("region = { x = 0, y = 0, width = 640, height = 480 }\ntiles = true").unwrap();
    // ISSTAD's image-score rules do not apply to PatchCore's own score.
    let err = check("image_score = \"max\"").unwrap_err();
    assert!(
        err.contains("industrial.image_score") && err.contains("PatchCore"),
        "{err}"
    );
}
