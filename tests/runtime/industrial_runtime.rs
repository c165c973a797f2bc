//! The factory-line runtime end to end on a small *untrained* ISSTAD-edge exported by
//! `vigil-train`'s own exporter: frames → prepare → tract → anomaly map → alerts with defect
//! boxes and heatmap snapshots, directly and through a real GStreamer pipeline of PNG files;
//! then the bad inputs. An untrained model's scores mean nothing, so thresholds are set where
//! every frame alerts (or none does) and the test checks the plumbing, not the detection.

#![cfg(feature = "train")]

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use burn::tensor::Device;
use sha2::{Digest, Sha256};
use vigil::alert::{Alert, Phase};
use vigil::capture::{Sample, Stamp, VideoFrame};
use vigil::detector::{DetectorError, Manifest, Plan};
use vigil::models::industrial::anomaly_map::ImageScore;
use vigil::models::industrial::overlay::{BOX_COLOUR, Layout, REGION_COLOUR, ScoreRange};
use vigil::models::industrial::{
    IndustrialDecide, IndustrialDetector, IndustrialPrepare, IndustrialSettings, IndustrialSpec,
    IsstadDetector, IsstadSpec, MapOutputs, Normalisation,
};
use vigil::pipeline::{Decide, Detect, Prepare};
use vigil::train::image::{Crop, Rgb8, normalised_chw};
use vigil::train::isstad::model::IsstadConfig;

const SIDE: usize = 32;
const MODEL: &str = "isstad-test";

/// Writes an untrained 32×32 ISSTAD-edge graph into `dir`; returns its sha256.
fn write_model(dir: &Path) -> String {
    let config = IsstadConfig::new()
        .with_image_size(SIDE)
        .with_patch_size(8)
        .with_encoder_dim(16)
        .with_encoder_depth(1)
        .with_encoder_heads(2)
        .with_decoder_dim(12)
        .with_decoder_depth_stage1(1)
        .with_decoder_depth(2)
        .with_decoder_heads(3);
    let device = Device::flex();
    let model = config.init_isstad(config.init_mae(&device), &device);
    let path = dir.join("isstad.onnx");
    vigil::train::onnx::save(&model.to_onnx().unwrap(), &path).unwrap();
    Sha256::digest(std::fs::read(&path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A manifest entry for the graph in `dir`, with what a test wants to get wrong.
struct Entry<'a> {
    image_size: usize,
    outputs: &'a [(&'a str, usize)],
}

const GOOD: Entry<'static> = Entry {
    image_size: SIDE,
    outputs: &[("probability", SIDE), ("reconstruction_error", SIDE)],
};

fn write_manifest(dir: &Path, sha256: &str, entry: &Entry) -> Manifest {
    let outputs: Vec<String> = entry
        .outputs
        .iter()
        .map(|(name, side)| {
            format!("{{ name = \"{name}\", dtype = \"f32\", shape = [1, {side}, {side}] }}")
        })
        .collect();
    let text = format!(
        r#"
[[model]]
name = "{MODEL}"
family = "isstad_edge"
description = "untrained, for tests"
source = "tests/runtime/industrial_runtime.rs"
files = [{{ path = "isstad.onnx", sha256 = "{sha256}" }}]
inputs = [{{ name = "image", dtype = "f32", shape = [1, 3, {SIDE}, {SIDE}] }}]
outputs = [{outputs}]
threshold = 0.0
[model.settings]
image_size = {size}
map_sigma = 4.0
pixel_threshold = 1.0
"#,
        outputs = outputs.join(", "),
        size = entry.image_size,
    );
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
    Manifest::load(&dir.join("manifest.toml")).unwrap()
}

/// A striped part, with a dark stain from frame `defect_from` on.
fn frame(seq: u64, width: usize, height: usize, defect_from: u64) -> VideoFrame {
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let base = if (x / 4 + y / 6) % 2 == 0 { 170 } else { 120 };
            let stain =
                seq >= defect_from && x.abs_diff(width / 3) < 6 && y.abs_diff(height / 2) < 5;
            let v: u8 = if stain { 20 } else { base };
            rgb.extend([v, v.saturating_sub(10), v.saturating_sub(20)]);
        }
    }
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

fn read_png_size(path: &Path) -> (usize, usize) {
    let image = vigil::io::png::read_png(path).unwrap();
    assert_eq!(image.pixels.len(), image.width * image.height * 3);
    (image.width, image.height)
}

/// The size of a heatmap snapshot of a `width`×`height` frame: frame and heatmap panels at the
/// frame's size, and a thin separator between them (2 px for these small frames).
fn snapshot_size(width: usize, height: usize) -> (usize, usize) {
    let layout = Layout::new(width, height).unwrap();
    assert_eq!((layout.separator, layout.height), (2, height), "{layout:?}");
    (2 * width + layout.separator, height)
}

struct Stages {
    prepare: IndustrialPrepare,
    detect: IndustrialDetector,
    decide: IndustrialDecide,
}

fn stages(
    manifest: &Manifest,
    settings: &IndustrialSettings,
    snapshots: Option<PathBuf>,
) -> Stages {
    let plan = Plan::load(manifest, MODEL).unwrap();
    let detect = IndustrialDetector::Isstad(IsstadDetector::new(&plan).unwrap());
    let spec = detect.spec();
    Stages {
        prepare: IndustrialPrepare::new(spec.side(), Normalisation::Half, None).unwrap(),
        decide: IndustrialDecide::new("cam0", &spec, settings, snapshots).unwrap(),
        detect,
    }
}

/// Runs frames through the three stages as a pipeline would; returns the alerts.
fn run(stages: &mut Stages, frames: &[VideoFrame]) -> Vec<Alert> {
    let mut alerts = Vec::new();
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
            let MapOutputs::Isstad {
                probabilities,
                reconstruction_error,
            } = &maps.outputs
            else {
                panic!("an ISSTAD model gives P and R");
            };
            assert_eq!(probabilities.len(), SIDE * SIDE);
            assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
            assert!(
                reconstruction_error
                    .iter()
                    .all(|r| r.is_finite() && *r >= 0.0)
            );
            stages.decide.decide(stamp, maps, &mut |a| alerts.push(a));
        }
    }
    stages.decide.finish(&mut |a| alerts.push(a));
    alerts
}

#[test]
fn an_untrained_model_runs_from_frames_to_alerts_boxes_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), &write_model(dir.path()), &GOOD);
    let (width, height) = (80, 60);
    let frames: Vec<_> = (0..12).map(|i| frame(i, width, height, 6)).collect();
    // Not there yet: created when the decide stage is built.
    let snapshots = dir.path().join("snapshots/line1");
    let settings = IndustrialSettings {
        max_boxes: 4,
        min_box_area: 1,
        snapshot_every: 3,
        update_interval_ms: 0,
        ..IndustrialSettings::default()
    };
    let mut stages = stages(&manifest, &settings, Some(snapshots.clone()));
    // The manifest's thresholds: image 0 (every frame alerts), pixel 1.
    assert_eq!(
        (stages.decide.threshold(), stages.decide.pixel_threshold()),
        (0.0, 1.0)
    );
    let alerts = run(&mut stages, &frames);

    let opened = &alerts[0];
    assert_eq!(opened.phase, Phase::New, "{alerts:#?}");
    assert_eq!(
        (
            opened.stream.as_str(),
            opened.model.as_str(),
            opened.label.as_str()
        ),
        ("cam0", MODEL, "defect")
    );
    assert_eq!(opened.threshold, 0.0);
    assert!(opened.score.is_finite() && opened.score >= 0.0);
    assert_eq!(opened.pts_ns, 0);
    let closed = alerts.last().unwrap();
    assert_eq!(closed.phase, Phase::End);
    assert!(closed.snapshot.is_none());
    assert!(alerts.iter().all(|a| a.event == opened.event));
    assert_eq!(
        alerts.iter().filter(|a| a.phase == Phase::New).count(),
        1,
        "one event: the score never fell below the off threshold"
    );
    for alert in &alerts {
        assert!(
            !alert.regions.is_empty() && alert.regions.len() <= 4,
            "{alert:?}"
        );
        for region in &alert.regions {
            assert!(region.width >= 1 && region.height >= 1, "{region:?}");
            assert!(
                region.x + region.width <= width as u32
                    && region.y + region.height <= height as u32,
                "{region:?} leaves the {width}×{height} frame"
            );
            assert!(region.score > 1.0, "boxes hold pixels above the threshold");
        }
    }

    // The new alert's snapshot is named after it and is a PNG of two frame-sized panels (the
    // frame, the heatmap) side by side, split by a separator.
    let name = opened.snapshot.as_ref().expect("a snapshot on new");
    assert_eq!(
        name.as_str(),
        format!("cam0-{}-0.heatmap.png", opened.event)
    );
    assert_eq!(
        read_png_size(&snapshots.join(name.as_str())),
        snapshot_size(width, height)
    );
    // Updates write at most one snapshot per 3 frames.
    let mut written: Vec<u64> = alerts
        .iter()
        .filter_map(|a| a.snapshot.as_ref())
        .map(|name| {
            assert!(snapshots.join(name.as_str()).is_file(), "{name}");
            name.trim_end_matches(".heatmap.png")
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    written.sort();
    assert!(written.windows(2).all(|w| w[1] - w[0] >= 3), "{written:?}");
    let files = std::fs::read_dir(&snapshots).unwrap().count();
    assert_eq!(files, written.len());

    // The journal's JSON carries the snapshot's name; records without one omit the key.
    let json = serde_json::to_value(opened).unwrap();
    assert_eq!(json["snapshot"], name.as_str());
    assert!(
        serde_json::to_value(closed)
            .unwrap()
            .get("snapshot")
            .is_none()
    );

    // A threshold no score reaches: nothing alerts and nothing is written.
    let quiet = IndustrialSettings {
        threshold: Some(1e9),
        ..settings
    };
    let quiet_dir = dir.path().join("quiet");
    let mut stages = self::stages(&manifest, &quiet, Some(quiet_dir.clone()));
    assert!(run(&mut stages, &frames).is_empty());
    assert_eq!(std::fs::read_dir(&quiet_dir).unwrap().count(), 0);
}

#[test]
fn snapshots_colour_only_the_region_the_model_saw() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), &write_model(dir.path()), &GOOD);
    let (width, height) = (80, 60);
    let frames: Vec<_> = (0..3).map(|i| frame(i, width, height, 0)).collect();
    let snapshots = dir.path().join("snapshots");
    let settings = IndustrialSettings {
        min_box_area: 1,
        update_interval_ms: 0,
        ..IndustrialSettings::default()
    };
    let mut stages = stages(&manifest, &settings, Some(snapshots.clone()));
    let region = vigil::prepare::resize::Crop {
        x: 12,
        y: 10,
        width: 48,
        height: 40,
    };
    stages.prepare = IndustrialPrepare::new(SIDE, Normalisation::Half, Some(region)).unwrap();
    let alerts = run(&mut stages, &frames);
    let name = alerts[0].snapshot.as_ref().expect("a snapshot on new");
    let image = vigil::io::png::read_png(&snapshots.join(name.as_str())).unwrap();
    let layout = Layout::new(width, height).unwrap();
    assert_eq!((image.width, image.height), (layout.width, height));
    // The manifest's pixel threshold is 1: the colour bar spans 0..2.
    let range = ScoreRange::up_to_twice(1.0).unwrap();
    let legend = layout.legend(range).expect("80×60 holds the colour bar");
    let pixel = |x: usize, y: usize| {
        let at = (y * image.width + x) * 3;
        [image.pixels[at], image.pixels[at + 1], image.pixels[at + 2]]
    };
    let inside = |x: usize, y: usize| {
        (region.x..region.x + region.width).contains(&x)
            && (region.y..region.y + region.height).contains(&y)
    };
    // The heatmap panel is grey outside the region (the frame is not: its pixels are
    // [v, v − 10, v − 20]) and coloured inside it.
    let mut coloured_inside = 0;
    for y in 0..height {
        for x in (0..width).filter(|&x| !legend.contains(x, y)) {
            let [r, g, b] = pixel(layout.heat_x + x, y);
            let grey = r == g && g == b;
            if inside(x, y) {
                coloured_inside += usize::from(!grey);
            } else {
                assert!(
                    grey,
                    "({x}, {y}) outside the region is coloured: {:?}",
                    [r, g, b]
                );
            }
        }
    }
    assert!(
        coloured_inside > region.width * region.height / 2,
        "{coloured_inside}"
    );
    // The frame panel outlines the region, dashed, where no box is drawn over it (this
    // untrained model's one box fills the region, so the box's outline is what shows).
    let corner = pixel(region.x, region.y);
    assert!(
        corner == REGION_COLOUR || corner == BOX_COLOUR,
        "{corner:?}"
    );
    for y in 0..height {
        for x in (0..width).filter(|&x| pixel(x, y) == REGION_COLOUR) {
            let on_edge = x == region.x
                || x == region.x + region.width - 1
                || y == region.y
                || y == region.y + region.height - 1;
            assert!(inside(x, y) && on_edge, "region colour at ({x}, {y})");
        }
    }
    for alert in &alerts {
        for r in &alert.regions {
            let (x, y) = (r.x as usize, r.y as usize);
            assert!(inside(x, y), "{r:?} is outside the model's region");
            assert!(
                inside(x + r.width as usize - 1, y + r.height as usize - 1),
                "{r:?}"
            );
        }
    }
}

#[test]
fn frames_reach_the_model_exactly_as_training_images_do() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), &write_model(dir.path()), &GOOD);
    let mut stages = stages(&manifest, &IndustrialSettings::default(), None);
    let shot = frame(3, 70, 45, 0);
    let mut inputs = Vec::new();
    stages
        .prepare
        .prepare(&Sample::Video(shot.clone()), &mut |_, input| {
            inputs.push(input)
        })
        .unwrap();
    let image = Rgb8 {
        width: 70,
        height: 45,
        pixels: shot.rgb.clone(),
    };
    assert_eq!(
        inputs[0].image,
        normalised_chw(&image, Crop::whole(70, 45), SIDE, false)
    );
    assert_eq!(*inputs[0].frame, shot, "the frame travels along unchanged");
}

#[test]
fn models_of_the_wrong_shape_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let sha = write_model(dir.path());

    // The manifest promises maps the graph does not make: tract's load refuses it.
    let wrong_maps = Entry {
        image_size: 16,
        outputs: &[("probability", 16), ("reconstruction_error", 16)],
    };
    let err = Plan::load(&write_manifest(dir.path(), &sha, &wrong_maps), MODEL).unwrap_err();
    assert!(matches!(err, DetectorError::Tensor { .. }), "{err}");
    assert!(err.to_string().contains("probability"), "{err}");

    // The graph matches its manifest, but not the image_size the runtime would resize to.
    let wrong_size = Entry {
        image_size: 16,
        ..GOOD
    };
    let plan = Plan::load(&write_manifest(dir.path(), &sha, &wrong_size), MODEL).unwrap();
    let err = IsstadDetector::new(&plan).err().unwrap().to_string();
    assert!(
        err.contains("tensor image") && err.contains("[1, 3, 16, 16]") && err.contains("32"),
        "{err}"
    );

    // Only one of the two maps.
    let one_output = Entry {
        image_size: SIDE,
        outputs: &[("probability", SIDE)],
    };
    let plan = Plan::load(&write_manifest(dir.path(), &sha, &one_output), MODEL).unwrap();
    let err = IsstadDetector::new(&plan).err().unwrap().to_string();
    assert!(
        err.contains("reconstruction_error") && err.contains("outputs [\"probability\"]"),
        "{err}"
    );
    let spec = IsstadSpec::from_manifest(plan.spec());
    assert!(spec.is_err());

    // Through a profile: `vigil check` names the stream.
    write_manifest(dir.path(), &sha, &wrong_size);
    let profile = profile(
        dir.path(),
        "kind = \"gstreamer\", pipeline = \"videotestsrc\"",
        "",
    );
    let err = vigil::runtime::check(&profile).unwrap_err().to_string();
    assert!(
        err.contains("stream line0") && err.contains("image_size 16"),
        "{err}"
    );
}

#[test]
fn bad_frames_and_unusable_snapshot_folders_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), &write_model(dir.path()), &GOOD);
    let mut stages = stages(&manifest, &IndustrialSettings::default(), None);
    let mut short = frame(5, 40, 30, 0);
    short.rgb.truncate(40 * 30 * 3 - 7);
    let err = stages
        .prepare
        .prepare(&Sample::Video(short), &mut |_, _| {
            panic!("a bad frame is not emitted")
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("frame 5") && err.contains("3593 bytes, expected 3600 for 40×30"),
        "{err}"
    );

    // A snapshot folder that cannot be created (a file is in the way) stops the stream from
    // being built, naming the path.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let spec = IsstadDetector::new(&Plan::load(&manifest, MODEL).unwrap())
        .unwrap()
        .spec()
        .clone();
    let err = IndustrialDecide::new(
        "cam0",
        &IndustrialSpec::Isstad(spec.clone()),
        &IndustrialSettings::default(),
        Some(blocker.join("snaps")),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("snapshot_dir cannot be created") && err.contains("not-a-folder/snaps"),
        "{err}"
    );
    // A threshold belongs to its image-score rule: the max rule takes the model's max
    // threshold, and a rule the model has none for must be given one in the profile.
    let max_rule = IndustrialSettings {
        image_score: Some(ImageScore::Max),
        pixel_threshold: Some(2.0),
        ..IndustrialSettings::default()
    };
    let fitted = IsstadSpec {
        rule_thresholds: vec![("max".into(), 7.5)],
        ..spec.clone()
    };
    let decide = IndustrialDecide::new(
        "cam0",
        &IndustrialSpec::Isstad(fitted.clone()),
        &max_rule,
        None,
    )
    .unwrap();
    assert_eq!(decide.threshold(), 7.5);
    let unfitted = IsstadSpec {
        rule_thresholds: vec![],
        ..spec.clone()
    };
    let err = IndustrialDecide::new(
        "cam0",
        &IndustrialSpec::Isstad(unfitted.clone()),
        &max_rule,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("no threshold fitted") && err.contains("Max"),
        "{err}"
    );
    // A model without a pixel threshold needs one from the profile.
    let no_pixel = IsstadSpec {
        pixel_threshold: None,
        ..spec.clone()
    };
    let err = IndustrialDecide::new(
        "cam0",
        &IndustrialSpec::Isstad(no_pixel.clone()),
        &IndustrialSettings::default(),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("industrial.pixel_threshold"), "{err}");
    let with_pixel = IndustrialSettings {
        pixel_threshold: Some(2.0),
        ..IndustrialSettings::default()
    };
    assert!(
        IndustrialDecide::new(
            "cam0",
            &IndustrialSpec::Isstad(no_pixel.clone()),
            &with_pixel,
            None
        )
        .is_ok()
    );

    // [stream.industrial] on a model of another family is a mistake, not ignored.
    let profile = profile(dir.path(), "kind = \"synth\", duration_s = 1.0", "");
    let mut yamnet = profile.clone();
    yamnet.device.manifest = None;
    yamnet.streams[0].model = "yamnet".into();
    let err = vigil::runtime::check(&yamnet).err().unwrap().to_string();
    assert!(
        err.contains(
            "[stream.industrial] is for isstad_edge and patchcore models; model yamnet is a audio_events model"
        ),
        "{err}"
    );
}

/// A profile in `dir` with one factory-line stream on the test model.
fn profile(dir: &Path, source: &str, industrial: &str) -> vigil::Profile {
    let text = format!(
        r#"
[box]
name = "test"
manifest = "manifest.toml"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "file", path = "alerts.jsonl" }}]
[[stream]]
name = "line0"
model = "{MODEL}"
queue_depth = 64
source = {{ {source} }}
[stream.industrial]
capture_width = 64
capture_height = 48
snapshot_dir = "snapshots"
{industrial}
"#
    );
    vigil::Profile::parse(&text, &dir.join("profile.toml")).unwrap()
}

/// PNG files through GStreamer (`multifilesrc ! pngdec`, as `vigil demo` plays its factory
/// line), the journal and a JSON-lines sink.
#[cfg(feature = "gst")]
#[test]
fn png_frames_through_gstreamer_raise_alerts_with_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), &write_model(dir.path()), &GOOD);
    let frames_dir = dir.path().join("frames");
    std::fs::create_dir(&frames_dir).unwrap();
    for i in 0..6 {
        let shot = frame(i, 96, 72, 3);
        vigil::io::png::write_rgb(
            &frames_dir.join(format!("frame-{i:03}.png")),
            96,
            72,
            &shot.rgb,
        )
        .unwrap();
    }
    let source = format!(
        "kind = \"gstreamer\", sync = false, pipeline = \"multifilesrc location={}/frame-%03d.png index=0 caps=\\\"image/png,framerate=10/1\\\" ! pngdec\"",
        frames_dir.display()
    );
    let profile = profile(
        dir.path(),
        &source,
        "snapshot_every = 2\nupdate_interval_ms = 0",
    );
    let report = vigil::runtime::check(&profile).unwrap();
    assert!(report[0].contains("line0"), "{report:?}");
    vigil::Runtime::start(&profile).unwrap().wait().unwrap();

    let alerts = common::read_alerts(&dir.path().join("alerts.jsonl"));
    assert_eq!(alerts.first().unwrap()["phase"], "new", "{alerts:#?}");
    assert_eq!(alerts.last().unwrap()["phase"], "end", "{alerts:#?}");
    let snapshot = alerts[0]["snapshot"].as_str().expect("a snapshot on new");
    assert!(snapshot.starts_with("line0-"), "{snapshot}");
    // Frames are captured at the profile's 64×48, not the files' 96×72.
    assert_eq!(
        read_png_size(&dir.path().join("snapshots").join(snapshot)),
        snapshot_size(64, 48)
    );
    for alert in &alerts {
        for region in alert["regions"].as_array().unwrap() {
            let right = region["x"].as_u64().unwrap() + region["width"].as_u64().unwrap();
            let bottom = region["y"].as_u64().unwrap() + region["height"].as_u64().unwrap();
            assert!(right <= 64 && bottom <= 48, "{region}");
        }
    }
}
