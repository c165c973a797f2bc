//! MAVD's data path and training: XD-Violence-layout lists read and checked, lengths
//! reconciled or refused, a tiny training run that learns, and evaluation of its weights and
//! of the authors' through the same AP code.

use std::path::Path;

use vigil::io::npy::write_npy;
use vigil::rng::SplitMix64;
use vigil::train::backend::BackendKind;
use vigil::train::mavd::data::{
    FeatureFileError, Features, XD_CROPS, XdDataError, fit_length, read_lists, valid_length,
};
use vigil::train::mavd::model::MavdConfig;
use vigil::train::mavd::train::{
    MavdTrainConfig, evaluate, import_authors, load_run, read_ground_truth, read_split, train,
};

/// Feature widths of the small fixtures: RGB, audio, flow.
const WIDTHS: [usize; 3] = [16, 8, 12];

struct VideoSpec {
    name: String,
    snippets: usize,
    /// Snippets `[start, end)` of the violent event, if any.
    event: Option<(usize, usize)>,
    /// Length of the flow files, when it differs from the others.
    flow_snippets: Option<usize>,
}

/// Features with a distinct pattern over the event: every modality lifts a few channels.
fn features(spec: &VideoSpec, snippets: usize, width: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut values = Vec::with_capacity(snippets * width);
    for t in 0..snippets {
        let in_event = spec.event.is_some_and(|(s, e)| t >= s && t < e);
        for c in 0..width {
            let base = 0.2 + 0.3 * rng.uniform() as f32;
            values.push(if in_event && c % 3 == 0 {
                base + 2.0
            } else {
                base
            });
        }
    }
    values
}

/// Writes a split in XD-Violence's layout (`RGB/<name>__k.npy`, `Flow/…`, `Audio/<name>__vggish.npy`
/// and the three lists), with `gt.npy` for its frame labels.
fn write_split(dir: &Path, videos: &[VideoSpec], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for sub in ["RGB", "Flow", "Audio"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let (mut rgb_list, mut flow_list, mut audio_list) =
        (String::new(), String::new(), String::new());
    let mut gt = Vec::new();
    for video in videos {
        for crop in 0..XD_CROPS {
            let rgb = format!("./RGB/{}__{crop}.npy", video.name);
            let flow = format!("./Flow/{}__{crop}.npy", video.name);
            let n = video.snippets;
            let flow_n = video.flow_snippets.unwrap_or(n);
            write_npy(
                dir.join(&rgb),
                &[n, WIDTHS[0]],
                &features(video, n, WIDTHS[0], &mut rng),
            )
            .unwrap();
            write_npy(
                dir.join(&flow),
                &[flow_n, WIDTHS[2]],
                &features(video, flow_n, WIDTHS[2], &mut rng),
            )
            .unwrap();
            rgb_list += &format!("{rgb}\n");
            flow_list += &format!("{flow}\n");
        }
        let audio = format!("./Audio/{}__vggish.npy", video.name);
        let n = video.snippets;
        write_npy(
            dir.join(&audio),
            &[n, WIDTHS[1]],
            &features(video, n, WIDTHS[1], &mut rng),
        )
        .unwrap();
        audio_list += &format!("{audio}\n");
        let kept = n.min(video.flow_snippets.unwrap_or(n));
        for t in 0..kept {
            let label = video.event.is_some_and(|(s, e)| t >= s && t < e);
            gt.extend(std::iter::repeat_n(f32::from(u8::from(label)), 16));
        }
    }
    std::fs::write(dir.join("rgb.list"), rgb_list).unwrap();
    std::fs::write(dir.join("flow.list"), flow_list).unwrap();
    std::fs::write(dir.join("audio.list"), audio_list).unwrap();
    write_npy(dir.join("gt.npy"), &[gt.len()], &gt).unwrap();
}

fn specs(count: usize, seed: u64) -> Vec<VideoSpec> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| {
            let snippets = 12 + rng.below(40);
            let violent = i % 2 == 1;
            let start = rng.below(snippets / 2);
            VideoSpec {
                name: if violent {
                    format!("Fight.Scene.{i}__#00-01-00_00-02-00_label_B1-0-0")
                } else {
                    format!("Street.Walk.{i}__#00-00-10_00-01-10_label_A")
                },
                snippets,
                event: violent.then_some((start, start + 3 + rng.below(snippets / 2))),
                flow_snippets: None,
            }
        })
        .collect()
}

#[test]
fn lists_are_read_with_labels_from_names() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), &specs(4, 1), 2);
    let videos = read_split(dir.path(), None).unwrap();
    assert_eq!(videos.len(), 4);
    assert_eq!(
        videos.iter().map(|v| v.violent).collect::<Vec<_>>(),
        vec![false, true, false, true]
    );
    assert!(videos[1].name.starts_with("Fight.Scene.1"));
    assert!(videos[1].rgb[4].ends_with(format!("RGB/{}__4.npy", videos[1].name)));
    let crop = videos[0].crop(2, [Some(16), Some(8), Some(12)]).unwrap();
    assert_eq!(
        (crop.rgb.width, crop.audio.width, crop.flow.width),
        (16, 8, 12)
    );
    assert_eq!(crop.rgb.snippets, crop.flow.snippets);
}

#[test]
fn bad_lists_and_files_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut videos = specs(3, 3);
    videos[1].flow_snippets = Some(videos[1].snippets - 1);
    videos[2].flow_snippets = Some(videos[2].snippets - 3);
    write_split(root, &videos, 4);
    let read = || read_split(root, None).unwrap();

    // Flow one snippet short: trimmed to the shortest, as XD-Violence code does.
    let crop = read()[1].crop(0, [None; 3]).unwrap();
    assert_eq!(crop.rgb.snippets, videos[1].snippets - 1);
    assert_eq!(crop.audio.snippets, videos[1].snippets - 1);
    // Three short: refused, naming the video and every length (the authors' code crashes).
    let err = read()[2].crop(0, [None; 3]).unwrap_err();
    assert!(matches!(err, XdDataError::LengthsDiffer { .. }), "{err}");
    assert!(err.to_string().contains(&videos[2].name), "{err}");

    // Wrong width for the model.
    let err = read()[0].crop(0, [Some(1024), None, None]).unwrap_err();
    assert!(
        err.to_string().contains("expected [snippets, 1024]"),
        "{err}"
    );

    // A flow list out of step with the RGB list.
    let flow_list = std::fs::read_to_string(root.join("flow.list")).unwrap();
    let mut lines: Vec<&str> = flow_list.lines().collect();
    lines.swap(5, 6);
    std::fs::write(root.join("flow.list"), lines.join("\n")).unwrap();
    let err = read_lists(
        &root.join("rgb.list"),
        &root.join("flow.list"),
        &root.join("audio.list"),
        root,
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            XdDataError::Misaligned {
                line: 6,
                crop: 0,
                ..
            }
        ),
        "{err}"
    );
    // A line missing from the audio list.
    std::fs::write(root.join("flow.list"), flow_list).unwrap();
    let audio_list = std::fs::read_to_string(root.join("audio.list")).unwrap();
    let first_two: Vec<&str> = audio_list.lines().take(2).collect();
    std::fs::write(root.join("audio.list"), first_two.join("\n")).unwrap();
    let err = read_split(root, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("15 RGB lines, 15 flow lines, 2 audio lines"),
        "{err}"
    );
    // A name that is not `<name>__<crop>.npy`.
    std::fs::write(
        root.join("audio.list"),
        audio_list.replace("__vggish", "_vggish"),
    )
    .unwrap();
    let err = read_split(root, None).unwrap_err();
    assert!(err.to_string().contains("audio.list line 1"), "{err}");
    std::fs::write(root.join("audio.list"), &audio_list).unwrap();

    // A non-finite value in a feature file.
    let path = &read()[0].rgb[3];
    let mut values = vec![0.5f32; 12 * 16];
    values[5 * 16 + 2] = f32::NAN;
    write_npy(path, &[12, 16], &values).unwrap();
    let err = read()[0].crop(3, [None; 3]).unwrap_err();
    assert!(
        matches!(
            err,
            XdDataError::File(FeatureFileError::NotFinite { snippet: 5, .. })
        ),
        "{err}"
    );
}

#[test]
fn training_bags_are_subsampled_or_padded_to_length() {
    let features = Features {
        snippets: 5,
        width: 2,
        values: (0..10).map(|v| v as f32 + 1.0).collect(),
    };
    // Longer than 3: rows at linspace(0, 4, 3) = 0, 2, 4.
    assert_eq!(
        fit_length(&features, 3),
        vec![1.0, 2.0, 5.0, 6.0, 9.0, 10.0]
    );
    // Shorter than 7: zero rows after.
    let padded = fit_length(&features, 7);
    assert_eq!(&padded[..10], &features.values[..]);
    assert!(padded[10..].iter().all(|v| *v == 0.0));
    assert_eq!(valid_length(&padded, 2), 5);
}

#[test]
fn a_tiny_training_run_learns_and_its_weights_evaluate_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (train_dir, test_dir) = (dir.path().join("train"), dir.path().join("test"));
    write_split(&train_dir, &specs(12, 5), 6);
    write_split(&test_dir, &specs(6, 7), 8);
    let out = dir.path().join("run");
    let config = MavdTrainConfig::new(MavdConfig::with_inputs(WIDTHS[0], WIDTHS[1], WIDTHS[2]))
        .with_iterations(40)
        .with_batch_size(16)
        .with_eval_every(10)
        .with_train_snippets(32)
        .with_learning_rate(1e-3);
    let summary = train(&train_dir, &test_dir, None, &out, config, BackendKind::Flex).unwrap();
    assert!(summary.best_ap.is_finite());
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    // The supervised MIL terms (unimodal bags, fused bags) must fall; the alignment term is
    // free to rise while the encoders grow confident.
    let supervised: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<f64> = line
                .split(',')
                .skip(2)
                .take(3)
                .map(|v| v.parse().unwrap())
                .collect();
            fields[0] + fields[2]
        })
        .collect();
    assert_eq!(supervised.len(), 40);
    let early: f64 = supervised[..5].iter().sum::<f64>() / 5.0;
    let late: f64 = supervised[35..].iter().sum::<f64>() / 5.0;
    assert!(
        late < 0.1 * early,
        "MIL losses did not fall: {early} → {late}"
    );
    // The events are plain in every modality: the trained head must rank them well.
    assert!(summary.best_ap > 0.8, "best AP {}", summary.best_ap);

    let device = burn::tensor::Device::flex();
    let (mavd, _) = load_run(&out, &device).unwrap();
    let videos = read_split(&test_dir, None).unwrap();
    let labels = read_ground_truth(&test_dir).unwrap();
    let evaluation = evaluate(&mavd, &videos, &labels, &device).unwrap();
    assert!((evaluation.ap - summary.best_ap).abs() < 1e-9);

    // Labels that do not cover 16 frames per snippet are refused, not compared shifted.
    let err = evaluate(&mavd, &videos, &labels[16..], &device).unwrap_err();
    assert!(err.to_string().contains("scores but"), "{err}");
}

#[test]
fn the_authors_heads_evaluate_on_paper_sized_features() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("authors");
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mavd-weights");
    let reports = import_authors(&weights, &run).unwrap();
    assert_eq!(reports.len(), 6);
    // Two videos with I3D/VGGish-sized features.
    let split = dir.path().join("test");
    for sub in ["RGB", "Flow", "Audio"] {
        std::fs::create_dir_all(split.join(sub)).unwrap();
    }
    let mut rng = SplitMix64::new(9);
    let mut lists = [String::new(), String::new(), String::new()];
    let mut gt = Vec::new();
    for (v, name) in ["Normal.A_label_A", "Riot.B_label_B4-0-0"]
        .iter()
        .enumerate()
    {
        let n = 10 + v * 4;
        let mut make =
            |width: usize| -> Vec<f32> { (0..n * width).map(|_| rng.uniform() as f32).collect() };
        for crop in 0..XD_CROPS {
            for (list, sub, width) in [(0, "RGB", 1024), (1, "Flow", 1024)] {
                let path = format!("{sub}/{name}__{crop}.npy");
                write_npy(split.join(&path), &[n, width], &make(width)).unwrap();
                lists[list] += &format!("{path}\n");
            }
        }
        let path = format!("Audio/{name}__vggish.npy");
        write_npy(split.join(&path), &[n, 128], &make(128)).unwrap();
        lists[2] += &format!("{path}\n");
        gt.extend((0..n * 16).map(|f| f32::from(u8::from(v == 1 && f >= 64))));
    }
    for (list, file) in lists.iter().zip(["rgb.list", "flow.list", "audio.list"]) {
        std::fs::write(split.join(file), list).unwrap();
    }
    write_npy(split.join("gt.npy"), &[gt.len()], &gt).unwrap();
    let device = burn::tensor::Device::flex();
    let (mavd, config) = load_run(&run, &device).unwrap();
    assert!(config.source.contains("ap86.07"));
    let evaluation = evaluate(
        &mavd,
        &read_split(&split, None).unwrap(),
        &read_ground_truth(&split).unwrap(),
        &device,
    )
    .unwrap();
    assert_eq!((evaluation.videos, evaluation.snippets), (2, 24));
    assert!((0.0..=1.0).contains(&evaluation.ap));
}
