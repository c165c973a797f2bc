//! MAVD-edge's staged training set: clips mixed from the real recordings of
//! `../shared/data/README.md`, labelled where the violence was put, cut and extracted as a live
//! stream is, written in the XD-Violence layout that `mavd train` reads (one crop per video).

#![cfg(feature = "gst")]

use std::path::{Path, PathBuf};

use vigil::io::npy::read_npy;
use vigil::models::violence::staging::{
    AUDIO_RATE, ClipRecipe, FRAMES_PER_SECOND, Material, MaterialPaths, SIDE, Split, StagingError,
    snippets_of, stage_clip,
};
use vigil::rng::SplitMix64;
use vigil::train::mavd::data::XdDataError;
use vigil::train::mavd::edge_data::{EdgeDataConfig, make_edge_data};
use vigil::train::mavd::train::{feature_widths, read_ground_truth, read_split};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn material(split: Split) -> Material {
    Material::load(&MaterialPaths::debian(&repo(".")), split)
        .expect("the recordings of ../shared/data/README.md (scripts/deps.sh installs them)")
}

/// Mean absolute difference between consecutive frames over `range`.
fn motion(frames: &[Vec<u8>], range: std::ops::Range<usize>) -> f64 {
    let mut total = 0.0;
    for i in range.clone() {
        total += frames[i]
            .iter()
            .zip(&frames[i + 1])
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / frames[i].len() as f64;
    }
    total / range.len() as f64
}

fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|s| f64::from(s * s)).sum::<f64>() / samples.len() as f64).sqrt()
}

#[test]
fn a_staged_event_is_louder_and_moves_more_where_its_labels_say() {
    let material = material(Split::Test);
    let recipe = ClipRecipe {
        seconds: 8.0,
        event: Some((3.0, 5.5)),
        violent: true,
    };
    let clip = stage_clip(&material, &recipe, &mut SplitMix64::new(3)).unwrap();
    let fps = FRAMES_PER_SECOND as usize;
    assert_eq!(clip.frames.len(), 8 * fps);
    assert!(clip.frames.iter().all(|f| f.len() == SIDE * SIDE * 3));
    assert_eq!(clip.audio.len(), 8 * AUDIO_RATE as usize);
    let labels = clip.frame_labels();
    let violent: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    assert_eq!(violent.first(), Some(&(3 * fps)));
    assert_eq!(violent.last(), Some(&(5 * fps + fps / 2 - 1)));
    assert_eq!(violent.len(), 5 * fps / 2);

    let (inside, before) = (
        motion(&clip.frames, 3 * fps..5 * fps),
        motion(&clip.frames, 0..2 * fps),
    );
    assert!(
        inside > 3.0 * before,
        "motion inside {inside:.2}, before {before:.2}"
    );
    let rate = AUDIO_RATE as usize;
    let (loud, quiet) = (
        rms(&clip.audio[3 * rate..5 * rate]),
        rms(&clip.audio[..2 * rate]),
    );
    assert!(
        loud > quiet,
        "audio rms inside {loud:.3}, before {quiet:.3}"
    );

    // A normal clip has no label, and the same seed stages the same clip.
    let normal = ClipRecipe {
        seconds: 8.0,
        event: None,
        violent: false,
    };
    let calm = stage_clip(&material, &normal, &mut SplitMix64::new(4)).unwrap();
    assert!(calm.event.is_none() && !calm.frame_labels().contains(&true));
    let again = stage_clip(&material, &normal, &mut SplitMix64::new(4)).unwrap();
    assert_eq!(calm.frames, again.frames);
    assert_eq!(calm.audio, again.audio);

    // Cut as a live stream is: 12 snippets of 16 frames, each with its audio window.
    let snippets = snippets_of(&clip).unwrap();
    assert_eq!(snippets.len(), 12);
    assert!(
        snippets
            .iter()
            .all(|s| s.frames.len() == 16 && s.audio.is_some())
    );
}

#[test]
fn test_material_is_held_out_from_training_material() {
    let (train, test) = (material(Split::Train), material(Split::Test));
    let names = |sounds: &[vigil::models::violence::staging::Sound]| -> Vec<String> {
        sounds.iter().map(|s| s.name.clone()).collect()
    };
    for speech in names(&test.speech) {
        assert!(!names(&train.speech).contains(&speech), "{speech} in both");
    }
    // Voices are held out by speaker; the one explosion and the blows are shared (the card
    // says so).
    let voices = |m: &Material| -> Vec<String> {
        names(&m.violent)
            .into_iter()
            .filter(|n| n.contains("/voices/"))
            .collect()
    };
    assert!(!voices(&test).is_empty() && !voices(&train).is_empty());
    for voice in voices(&test) {
        assert!(!voices(&train).contains(&voice), "{voice} in both");
    }
    // A long recording's test part is its end, never frames the training part has.
    let vtest = |m: &Material| {
        m.footage
            .iter()
            .find(|f| f.name.ends_with("vtest.avi"))
            .map(|f| f.frames.len())
            .unwrap()
    };
    let (train_frames, test_frames) = (vtest(&train), vtest(&test));
    let fraction = train_frames as f64 / (train_frames + test_frames) as f64;
    assert!((fraction - 0.7).abs() < 0.01, "{fraction}");
    assert!(!test.footage.iter().any(|f| f.name.ends_with("bikes.mp4")));
}

#[test]
fn missing_material_and_short_clips_are_refused_by_name() {
    let mut paths = MaterialPaths::debian(&repo("."));
    paths.speech = vec![PathBuf::from("/nonexistent/speech.wav")];
    match Material::load(&paths, Split::Train) {
        Err(err @ StagingError::Missing { what: "speech", .. }) => {
            assert!(err.to_string().contains("/nonexistent/speech.wav"), "{err}")
        }
        other => panic!("expected missing speech, got {other:?}"),
    }
    let material = material(Split::Test);
    let short = ClipRecipe {
        seconds: 3.0,
        event: None,
        violent: true,
    };
    let err = stage_clip(&material, &short, &mut SplitMix64::new(1)).unwrap_err();
    assert!(err.to_string().contains("3 s"), "{err}");
    let long = ClipRecipe {
        seconds: 600.0,
        event: None,
        violent: false,
    };
    let err = stage_clip(&material, &long, &mut SplitMix64::new(1)).unwrap_err();
    assert!(matches!(err, StagingError::NoLongFootage { .. }), "{err}");
}

#[test]
fn the_written_splits_read_as_one_crop_xd_violence_lists() {
    let out = tempfile::tempdir().unwrap();
    let config = EdgeDataConfig::new()
        .with_train_clips(2)
        .with_validation_clips(1)
        .with_test_clips(2)
        .with_clip_seconds(5.0)
        .with_threads(2);
    let summaries = make_edge_data(
        &MaterialPaths::debian(&repo(".")),
        &repo("models/manifest.toml"),
        &repo("models/mavd-edge/mobilenet_v2_features.onnx"),
        out.path(),
        &config,
    )
    .unwrap();
    assert_eq!(
        summaries.iter().map(|s| s.clips).collect::<Vec<_>>(),
        [2, 1, 2]
    );
    let test = out.path().join("test");
    let videos = read_split(&test, None).unwrap();
    assert_eq!(videos.len(), 2);
    assert!(videos.iter().all(|v| v.crops() == 1));
    assert_eq!(
        videos.iter().map(|v| v.violent).collect::<Vec<_>>(),
        [false, true],
        "every other clip is violent, and the names say which"
    );
    assert_eq!(feature_widths(&videos).unwrap(), [1280, 1024, 152]);
    // 5 s = 120 frames = 7 whole snippets; 16 frame labels each.
    let labels = read_ground_truth(&test).unwrap();
    assert_eq!(labels.len(), 2 * 7 * 16);
    assert!(!labels[..7 * 16].contains(&true));
    let clips: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(test.join("clips.json")).unwrap()).unwrap();
    let (a, b) = (
        clips[1]["event_s"][0].as_f64().unwrap(),
        clips[1]["event_s"][1].as_f64().unwrap(),
    );
    let violent: Vec<usize> = (0..7 * 16).filter(|&i| labels[7 * 16 + i]).collect();
    let first = violent[0] as f64 / 24.0;
    assert!(
        (first - a).abs() <= 1.0 / 24.0,
        "first violent frame at {first}, event at {a}"
    );
    assert!(((violent.len() as f64 / 24.0) - (b - a)).abs() <= 2.0 / 24.0);
    let rgb = read_npy::<f32>(test.join("RGB/edge-test-0001_label_B1-0-0__0.npy")).unwrap();
    assert_eq!(rgb.shape, [7, 1280]);
    assert!(rgb.data.iter().all(|v| v.is_finite()));

    // A list whose RGB lines are not a whole number of crops per video is refused.
    std::fs::write(
        test.join("rgb.list"),
        "RGB/a__0.npy\nRGB/a__1.npy\nRGB/b__0.npy\n",
    )
    .unwrap();
    let err = vigil::train::mavd::data::read_lists(
        &test.join("rgb.list"),
        &test.join("flow.list"),
        &test.join("audio.list"),
        &test,
    )
    .unwrap_err();
    assert!(
        matches!(err, XdDataError::ListLengths { rgb: 3, .. }),
        "{err}"
    );
}
