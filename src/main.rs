//! `vigil`: the edge runtime's command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use vigil::detector::Manifest;
use vigil::profile::Profile;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Real-time anomaly detection at the edge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a profile without running it: models, sources, sinks.
    Check { profile: PathBuf },
    /// Run a profile until its sources end (or forever, for live sources).
    Run { profile: PathBuf },
    /// Run the demo: generated audio with gunshots through YAMNet, a generated hyperspectral
    /// flight line, a surveillance camera and microphone on which a fight is staged (MAVD-edge),
    /// and a factory line on which a defect appears (PatchCore); alerts as JSON lines on
    /// stdout.
    Demo,
    /// Describe a model (manifest name or .onnx path): tensors, and which operators run on
    /// int8 kernels after tract's optimization.
    Info { model: String },
    /// Evaluate a score file (`--scores`, CSV with `score` and `label` columns: ROC AUC,
    /// average precision, PR AUC as XD-Violence reports "AP", F1-max), or a run's alerts
    /// against a labelled recording (`--events` + `--alerts` + `--duration`: per label, events
    /// detected, latency, false alarms per hour of background), or the recording itself run
    /// through a profile's stream (`--events` + `--recording` + `--profile`, or `--dataset`).
    Eval(Box<EvalArgs>),
    /// Score one hyperspectral scene (ENVI `.hdr`, `.npy` H×W×B, MATLAB v5 `.mat`) with a
    /// conventional detector; write the H×W float32 score map as `.npy` and, optionally, a PNG.
    Hsi(HsiArgs),
    /// Load and soak: factory-line streams fed faster than their model takes them, through
    /// the whole runtime; checks that memory stays flat, latency bounded, drops counted and
    /// no alert lost, and exits non-zero otherwise.
    Soak {
        /// How long, in seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        streams: usize,
        /// Frames offered per stream, as a multiple of what the model takes here.
        #[arg(long, default_value_t = 2.0)]
        overload: f64,
        /// Working folder (frames, profile, journal, alerts, report).
        #[arg(long, default_value = "var/soak")]
        work: PathBuf,
    },
    /// Measure vigil against peers in the same run (onnxruntime, numpy/librosa) and print
    /// the ratios.
    Bench {
        /// Timed runs per measurement.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Which measurements: all, audio (YAMNet, log-mel, pipeline), hsi (RX, streaming),
        /// industrial, or models (every shipped network against onnxruntime's best form, 1 and
        /// 2 threads; not part of all).
        #[arg(long, value_enum, default_value = "all")]
        suite: BenchSuite,
        /// With --suite models: only the networks whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// With --suite models: also write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// With --suite models: keep each network's inputs and onnxruntime's outputs of the
        /// shipped file in DIR/<model>/, the reference `tests/references/networks_parity.rs` holds
        /// another build to (`VIGIL_NETWORK_REFERENCES=DIR`).
        #[arg(long, value_name = "DIR")]
        references: Option<PathBuf>,
    },
    /// Score one video's pre-extracted snippet features (XD-Violence layout: `[snippets,
    /// width]` f32 `.npy` per modality) with a MAVD window graph (`vigil-train mavd export`),
    /// as a stream: CSV of each snippet's live and settled scores.
    MavdScore {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        rgb: PathBuf,
        #[arg(long)]
        audio: PathBuf,
        #[arg(long)]
        flow: PathBuf,
    },
    /// Dense optical flow on frame pairs with known motion (`<name>.frames.npy` +
    /// `<name>.flow.npy`, as scripts/bench/flow.py writes them): endpoint error and time per
    /// pair of each search preset, as JSON lines.
    FlowBench {
        dir: PathBuf,
        /// Timed runs per pair and preset (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchSuite {
    All,
    Audio,
    Hsi,
    /// The factory line: PatchCore and ISSTAD-edge against onnxruntime, pipeline frames/s.
    Industrial,
    /// Every shipped network in its shipped form against onnxruntime's fp32 and int8 of the
    /// same network, at 1 and 2 threads.
    Models,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HsiDetectorArg {
    Rx,
    Lrx,
    Slrx,
    Crd,
    /// FERS-edge features (the shipped int8 model for the band count) fused into global RX.
    Fers,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HsiRuleArg {
    /// χ² quantile with the covariance's rank as degrees of freedom (RX and LRX only).
    CfarChi2,
    /// The scene's own score quantile.
    EmpiricalQuantile,
}

#[derive(clap::Args)]
struct HsiArgs {
    scene: PathBuf,
    #[arg(long, value_enum, default_value = "rx")]
    detector: HsiDetectorArg,
    /// Where to write the H×W float32 score map (`.npy`).
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Where to write the anomaly map as PNG (grey scores, red above the threshold).
    #[arg(long)]
    map: Option<PathBuf>,
    /// Keep only the first this many bands.
    #[arg(long)]
    bands: Option<usize>,
    /// Inner (guard) window of LRX and CRD, odd.
    #[arg(long, default_value_t = 3)]
    inner: usize,
    /// Outer window of LRX and CRD, odd.
    #[arg(long, default_value_t = 9)]
    outer: usize,
    /// CRD's regularisation λ.
    #[arg(long, default_value_t = 1e-2)]
    lambda: f64,
    /// SLRX's blocks per side.
    #[arg(long, default_value_t = 10)]
    block_num: usize,
    /// False-alarm rate of the alert threshold.
    #[arg(long, default_value_t = 1e-4)]
    p_fa: f64,
    /// Threshold rule; default cfar-chi2 for rx/lrx, empirical-quantile otherwise.
    #[arg(long, value_enum)]
    rule: Option<HsiRuleArg>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// What scores a scene on `vigil hsi`.
enum HsiScorer {
    Classic(vigil::hsi::detect::SceneDetector),
    Fers(Box<vigil::hsi::fers::FersEdge>),
}

fn hsi(args: HsiArgs) -> Result<()> {
    use vigil::hsi::detect::SceneDetector;
    use vigil::hsi::local::DualWindow;
    use vigil::hsi::threshold::ThresholdRule;

    let scene = vigil::hsi::read_scene(&args.scene)?;
    let cube = match args.bands {
        Some(bands) => scene.cube.first_bands(bands)?,
        None => scene.cube,
    };
    let window = DualWindow {
        inner: args.inner,
        outer: args.outer,
    };
    let scorer = match args.detector {
        HsiDetectorArg::Rx => HsiScorer::Classic(SceneDetector::Rx),
        HsiDetectorArg::Lrx => HsiScorer::Classic(SceneDetector::Lrx { window }),
        HsiDetectorArg::Slrx => HsiScorer::Classic(SceneDetector::Slrx {
            block_num: args.block_num,
        }),
        HsiDetectorArg::Crd => HsiScorer::Classic(SceneDetector::Crd {
            window,
            lambda: args.lambda,
        }),
        HsiDetectorArg::Fers => {
            let manifest = vigil::detector::Manifest::shipped()?;
            let name = vigil::hsi::fers::model_for(cube.bands(), args.bands)?;
            HsiScorer::Fers(Box::new(vigil::hsi::fers::FersEdge::load(
                &manifest, &name,
            )?))
        }
    };
    let detector_name = match &scorer {
        HsiScorer::Classic(detector) => detector.name(),
        HsiScorer::Fers(_) => "fers-edge + rx",
    };
    // RX and LRX scores follow χ² for Gaussian backgrounds; FERS-edge's fused cube has no such
    // law, so it thresholds on its own quantile like the other detectors.
    let mahalanobis = matches!(
        scorer,
        HsiScorer::Classic(SceneDetector::Rx | SceneDetector::Lrx { .. })
    );
    let rule = match (args.rule, mahalanobis) {
        (Some(HsiRuleArg::CfarChi2), false) => bail!(
            "--rule cfar-chi2 needs χ²-distributed scores (rx, lrx); {detector_name} scores are not: use empirical-quantile"
        ),
        (Some(HsiRuleArg::CfarChi2), true) | (None, true) => {
            ThresholdRule::CfarChi2 { p_fa: args.p_fa }
        }
        (Some(HsiRuleArg::EmpiricalQuantile), _) | (None, false) => {
            ThresholdRule::EmpiricalQuantile { p_fa: args.p_fa }
        }
    };
    rule.validate()?;
    let started = std::time::Instant::now();
    let scores = match &scorer {
        HsiScorer::Classic(detector) => detector.score(&cube, args.threads)?,
        HsiScorer::Fers(model) => model.score(&cube, args.threads)?,
    };
    let elapsed = started.elapsed();
    let threshold = rule.threshold(cube.bands(), &scores)?;
    let flagged = scores.iter().filter(|&&s| f64::from(s) > threshold).count();
    println!(
        "{}: {}×{}×{} scored by {} in {:.1} ms",
        args.scene.display(),
        cube.rows(),
        cube.cols(),
        cube.bands(),
        detector_name,
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "threshold {threshold:.4} ({rule}): {flagged} of {} pixels above ({:.4} %)",
        scores.len(),
        100.0 * flagged as f64 / scores.len() as f64
    );
    if let Some(labels) = &scene.labels {
        let values: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
        let auc = vigil::eval::roc_auc(&values, labels)?;
        let anomalous = labels.iter().filter(|&&l| l).count();
        println!("pixel ROC AUC {auc:.4} against the scene's map ({anomalous} anomalous pixels)");
    }
    if let Some(path) = &args.scores {
        vigil::io::npy::write_npy(path, &[cube.rows(), cube.cols()], &scores)?;
        println!("scores: {}", path.display());
    }
    if let Some(path) = &args.map {
        vigil::models::hyperspectral::map::write_png(
            path,
            cube.rows(),
            cube.cols(),
            &scores,
            threshold,
        )
        .map_err(anyhow::Error::msg)?;
        println!("map: {}", path.display());
    }
    Ok(())
}

/// Writes the demo's synthetic flight line where `targets/demo.toml` replays it from.
fn write_demo_scene() -> Result<vigil::hsi::synthetic::Scene> {
    use vigil::hsi::synthetic::{Scene, SceneConfig};
    let dir = repo_path("var/demo/hsi");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let scene = Scene::generate(&SceneConfig::default())?;
    scene.write_envi(&dir, "scene")?;
    Ok(scene)
}

/// The model the factory-line demo runs: PatchCore fitted on the good images of the brick
/// texture's MVTec-layout set (`vigil-train industrial fit`, see models/patchcore.md).
const FACTORY_MODEL: &str = "patchcore-brick";
/// Frames of the factory-line demo, and the first one showing the defect.
const FACTORY_FRAMES: usize = 40;
const FACTORY_DEFECT_FROM: usize = 20;
/// A 640×480 camera over the belt; the part passes through a 224×224 region, the scale the
/// model was fitted at (`make-data --side 224` crops the texture at its own resolution).
const FACTORY_FRAME_SIZE: (usize, usize) = (640, 480);
const FACTORY_PART_SIDE: usize = 224;
const FACTORY_REGION: (usize, usize) = (208, 128);
/// The part's texture comes from rows no training or validation crop came from (make-data
/// keeps the bottom half of the texture for testing), so the demo's part is unseen texture.
const FACTORY_TOP_ROW: usize = 272;

/// Why the factory-line demo cannot run here, if it cannot: it needs the trained model, the
/// brick texture and GStreamer. Said plainly and skipped, never faked.
fn factory_line_missing(texture: &Path) -> Result<Option<String>> {
    let manifest = Manifest::shipped()?;
    let Ok(spec) = manifest.model(FACTORY_MODEL) else {
        return Ok(Some(format!(
            "model {FACTORY_MODEL} is not installed in models/manifest.toml: train and install it \
             with `vigil-train industrial fit` (models/patchcore.md)"
        )));
    };
    let file = manifest.path_of(spec.onnx_file());
    if !file.is_file() {
        return Ok(Some(format!(
            "model {FACTORY_MODEL} is in the manifest but its file is missing: {}",
            file.display()
        )));
    }
    if !cfg!(feature = "gst") {
        return Ok(Some(
            "this build of vigil has no GStreamer (feature gst), which plays the frames".into(),
        ));
    }
    if !texture.is_file() {
        return Ok(Some(format!(
            "the brick texture is missing (scripts/fetch-photos.sh fetches it): {}",
            texture.display()
        )));
    }
    Ok(None)
}

/// Writes the factory-line frames: a window panning slowly across the brick texture (a part
/// moving on the belt), with a crack and a stain on the part from frame 20 on. The defect is
/// drawn in texture coordinates, so it moves with the part.
fn write_factory_frames(texture: &Path, dir: &Path) -> Result<()> {
    let brick = vigil::io::png::read_png(texture)?;
    let (width, height) = (FACTORY_PART_SIDE, FACTORY_PART_SIDE);
    let (step_x, step_y) = (3, 0);
    let span_x = width + step_x * FACTORY_FRAMES;
    let span_y = FACTORY_TOP_ROW + height + step_y * FACTORY_FRAMES;
    if brick.width < span_x || brick.height < span_y {
        bail!(
            "the texture is {}×{}, the demo pans over {span_x}×{span_y}: {}",
            brick.width,
            brick.height,
            texture.display()
        );
    }
    // How much of each texture pixel the defect leaves (1 = untouched).
    let mut shade = vec![1.0f32; brick.width * brick.height];
    // The crack: a jagged dark line about 70 px long, 3 px wide, where the part's middle
    // passes the camera.
    let (crack_x, crack_y) = (width / 2 + 40, FACTORY_TOP_ROW + height / 2 - 40);
    for step in 0..70usize {
        let x = crack_x + step;
        let wobble = 6.0 * (step as f32 * 0.21).sin() + 3.0 * (step as f32 * 0.57).cos();
        let y = (crack_y as f32 + step as f32 * 0.35 + wobble) as usize;
        for dy in 0..3 {
            shade[(y + dy) * brick.width + x] = 0.2;
        }
    }
    // The stain: a soft dark ellipse below the crack.
    let (stain_x, stain_y, rx, ry) = (crack_x + 20, crack_y + 45, 16.0f32, 10.0f32);
    for y in stain_y - 12..stain_y + 12 {
        for x in stain_x - 18..stain_x + 18 {
            let d = ((x as f32 - stain_x as f32) / rx).powi(2)
                + ((y as f32 - stain_y as f32) / ry).powi(2);
            if d < 1.0 {
                let cell = &mut shade[y * brick.width + x];
                *cell = cell.min(0.35 + 0.4 * d);
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The belt: dark grey rubber with faint lengthwise grooves, around the part.
    let (frame_width, frame_height) = FACTORY_FRAME_SIZE;
    let (region_x, region_y) = FACTORY_REGION;
    let mut rgb: Vec<u8> = (0..frame_width * frame_height)
        .flat_map(|i| {
            let groove = if (i / frame_width) % 16 == 0 { 8 } else { 0 };
            [52 - groove, 54 - groove, 58 - groove]
        })
        .collect();
    for frame in 0..FACTORY_FRAMES {
        let (left, top) = (step_x * frame, FACTORY_TOP_ROW + step_y * frame);
        let defect = frame >= FACTORY_DEFECT_FROM;
        for row in 0..height {
            for column in 0..width {
                let at = (top + row) * brick.width + left + column;
                let factor = if defect { shade[at] } else { 1.0 };
                let out = ((region_y + row) * frame_width + region_x + column) * 3;
                for channel in 0..3 {
                    let value = f32::from(brick.pixels[at * 3 + channel]) * factor;
                    rgb[out + channel] = value.round() as u8;
                }
            }
        }
        let path = dir.join(format!("frame-{frame:03}.png"));
        vigil::io::png::write_rgb(&path, frame_width, frame_height, &rgb)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// The factory-line part of `vigil demo`: generated frames of a brick part on which a crack and
/// a stain appear, played through GStreamer at 10 frames/s into PatchCore; alerts on stdout,
/// heatmap snapshots in `var/demo/factory/snapshots`.
fn demo_factory_line(stop: &AtomicBool) -> Result<()> {
    let texture = repo_path("models/cache/textures/brick.png");
    if let Some(reason) = factory_line_missing(&texture)? {
        log::warn!("demo: factory line skipped: {reason}");
        return Ok(());
    }
    let dir = repo_path("var/demo/factory");
    let frames = dir.join("frames");
    let snapshots = dir.join("snapshots");
    // Snapshots of an earlier run would be mistaken for this one's.
    if snapshots.exists() {
        std::fs::remove_dir_all(&snapshots)
            .with_context(|| format!("cannot clear {}", snapshots.display()))?;
    }
    write_factory_frames(&texture, &frames)?;
    let (width, height) = FACTORY_FRAME_SIZE;
    let (region_x, region_y) = FACTORY_REGION;
    let profile = dir.join("factory-line.toml");
    let text = format!(
        r#"# Written by `vigil demo`: its factory-line part.
[box]
name = "demo-factory-line"

[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "stdout", path = "-" }}]

[[stream]]
name = "line0"
model = "{FACTORY_MODEL}"
# Recorded frames: a deep queue so none is dropped while the model works.
queue_depth = 64
source = {{ kind = "gstreamer", pipeline = "multifilesrc location={frames}/frame-%03d.png index=0 caps=\"image/png,framerate=10/1\" ! pngdec" }}

[stream.industrial]
capture_width = {width}
capture_height = {height}
# Where the part passes: the model sees it at the scale it was fitted at.
region = {{ x = {region_x}, y = {region_y}, width = {side}, height = {side} }}
snapshot_dir = "snapshots"
snapshot_every = 5
"#,
        frames = frames.display(),
        side = FACTORY_PART_SIDE,
    );
    std::fs::write(&profile, text)
        .with_context(|| format!("cannot write {}", profile.display()))?;
    log::info!(
        "demo: a factory line, {FACTORY_FRAMES} frames of a brick part at 10 frames/s; a crack and a stain appear at frame {FACTORY_DEFECT_FROM}"
    );
    vigil::runtime::run(&profile, stop, &AtomicBool::new(false))
        .map_err(|err| anyhow::anyhow!(err))?;
    log::info!(
        "demo: factory-line heatmap snapshots are in {}",
        snapshots.display()
    );
    Ok(())
}

/// The surveillance part of `vigil demo` (see `vigil::models::violence::demo`): a 20 s clip
/// staged from held-out real recordings with a fight from 6 s to 9 s, played at its own pace
/// through MAVD-edge; alerts on stdout, evidence in `var/demo/surveillance/evidence`.
#[cfg(feature = "gst")]
fn demo_surveillance(stop: &AtomicBool) -> Result<()> {
    use vigil::models::violence::demo::{self, DemoOptions};
    let dir = repo_path("var/demo/surveillance");
    let evidence = dir.join("evidence");
    if evidence.exists() {
        std::fs::remove_dir_all(&evidence)
            .with_context(|| format!("cannot clear {}", evidence.display()))?;
    }
    let options = DemoOptions {
        violent: true,
        real_time: true,
        alerts: PathBuf::from("-"),
    };
    let written = match demo::prepare(&repo_path("."), &dir, &options) {
        Ok(written) => written,
        Err(err) => {
            log::warn!(
                "demo: surveillance skipped: {err} (scripts/deps.sh installs the recordings)"
            );
            return Ok(());
        }
    };
    log::info!(
        "demo: a surveillance camera with its microphone, {} s of a street scene with speech; a fight is staged from {} s to {} s: {}",
        demo::SECONDS,
        demo::EVENT.0,
        demo::EVENT.1,
        written.clip.display()
    );
    vigil::runtime::run(&written.profile, stop, &AtomicBool::new(false))
        .map_err(|err| anyhow::anyhow!(err))?;
    log::info!(
        "demo: surveillance evidence (keyframes and audio per alert) is in {}",
        evidence.display()
    );
    Ok(())
}

#[cfg(not(feature = "gst"))]
fn demo_surveillance(_stop: &AtomicBool) -> Result<()> {
    log::warn!("demo: surveillance skipped: this build of vigil has no GStreamer (feature gst)");
    Ok(())
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    // Set by SIGINT or SIGTERM: open events are ended and every alert reaches the journal. A
    // second one while stopping exits at once. SIGHUP reloads `vigil run`'s profile.
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    signal_hook::flag::register(SIGHUP, reload.clone())
        .context("cannot install the SIGHUP handler")?;
    match cli.command {
        Command::Check { profile } => {
            let loaded = Profile::load(&profile)?;
            for line in vigil::runtime::check(&loaded)? {
                println!("{line}");
            }
            println!("{}: ok", profile.display());
        }
        Command::Run { profile } => {
            vigil::runtime::run(&profile, &stop, &reload).map_err(|err| anyhow::anyhow!(err))?;
        }
        Command::Demo => {
            let profile = repo_path("targets/demo.toml");
            let loaded = Profile::load(&profile)?;
            if let Err(err) = vigil::runtime::check(&loaded) {
                if matches!(
                    err,
                    vigil::runtime::RuntimeError::Detector(
                        vigil::detector::DetectorError::MissingFile { .. }
                    )
                ) {
                    bail!(
                        "{err}\nThe demo needs YAMNet: run scripts/fetch-models.sh (the README's demo command does)."
                    );
                }
                return Err(err.into());
            }
            let scene = write_demo_scene()?;
            log::info!("demo: 12 s of generated speech-like audio with gunshots at 3 s and 8 s");
            log::info!(
                "demo: a 100-line hyperspectral flight line at 50 lines/s with sub-pixel targets at (row, col) {:?}",
                scene.targets
            );
            vigil::runtime::run(&profile, &stop, &reload).map_err(|err| anyhow::anyhow!(err))?;
            if !stop.load(Ordering::SeqCst) {
                demo_surveillance(&stop)?;
            }
            if !stop.load(Ordering::SeqCst) {
                demo_factory_line(&stop)?;
            }
        }
        Command::Info { model } => {
            let manifest = Manifest::shipped().ok();
            let spec = manifest.as_ref().and_then(|m| m.model(&model).ok());
            let report = vigil::detector::inspect::inspect(&model, manifest.as_ref())
                .with_context(|| format!("cannot inspect {model}"))?;
            print!("{}", report.render(spec));
        }
        Command::Bench {
            runs,
            suite: BenchSuite::Models,
            only,
            json,
            references,
        } => {
            let rows = vigil::bench::models::models(runs, only.as_deref(), references.as_deref())?;
            if rows.is_empty() {
                bail!(
                    "no shipped network's name contains {:?}",
                    only.unwrap_or_default()
                );
            }
            print!("{}", vigil::bench::models::render(&rows));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&rows)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::Bench { runs, suite, .. } => bench(runs, suite)?,
        Command::MavdScore {
            model,
            rgb,
            audio,
            flow,
        } => mavd_score(&model, &rgb, &audio, &flow)?,
        Command::FlowBench { dir, repeats } => {
            for result in vigil::flow::bench::run(&dir, repeats)? {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Command::Soak {
            seconds,
            streams,
            overload,
            work,
        } => soak(seconds, streams, overload, &work, &stop)?,
        Command::Hsi(args) => hsi(args)?,
        Command::Eval(args) => eval(*args)?,
    }
    Ok(())
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A score file: CSV with `score` and `label` columns.
    #[arg(long, conflicts_with_all = ["events", "alerts", "recording", "dataset"])]
    scores: Option<PathBuf>,
    /// The marked events of a recording: CSV with `start`, `end` (seconds) and `label`.
    #[arg(long)]
    events: Option<PathBuf>,
    /// The alerts a run on that recording raised (a `jsonl` sink's file); needs --duration.
    #[arg(long, requires = "events", conflicts_with = "recording")]
    alerts: Option<PathBuf>,
    /// The recording's length in seconds (with --alerts).
    #[arg(long, requires = "alerts")]
    duration: Option<f64>,
    /// Score the recording itself (a WAV file) through --profile's stream, instead of --alerts.
    #[arg(long, requires_all = ["events", "profile"])]
    recording: Option<PathBuf>,
    /// A folder of recordings: every NAME.wav with its NAME.events.csv, scored as --recording
    /// and reported together.
    #[arg(long, requires = "profile", conflicts_with_all = ["events", "alerts"])]
    dataset: Option<PathBuf>,
    /// The profile whose stream scores --recording or --dataset.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// The stream: with --alerts, the one the alerts must come from (default: the first
    /// alert's); with --recording or --dataset, the profile's stream that scores it (default:
    /// the first). Given several times with --recording or --dataset, every stream scores the
    /// recording and their alerts are pooled: what the box raises from all of them.
    #[arg(long)]
    stream: Vec<String>,
    /// Footage played under each recording for violence streams (which take video with the
    /// sound), looped back and forth to the recording's length; given several times, the
    /// recordings take them in turn.
    #[arg(long)]
    footage: Vec<PathBuf>,
    /// Play each --footage from this fraction of its length on (e.g. 0.7: the last 30 %, the
    /// part of opencv-doc's recordings MAVD-edge was not trained on).
    #[arg(long, default_value_t = 0.0, requires = "footage")]
    footage_from: f64,
    /// Count every marked event and every alert as this one label: whether the box raised
    /// anything at all for an event, whichever stream and label did (`--by label` then breaks
    /// the detections down by the marked label).
    #[arg(long = "as")]
    as_label: Option<String>,
    /// The model the alerts must come from, or that scores the recording instead of the
    /// stream's own.
    #[arg(long)]
    model: Option<String>,
    /// Labels the box raises (default: the audio events' and `violence`).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Seconds before an event's start and after its end within which an alert counts for it.
    #[arg(long, default_value_t = vigil::eval::events::MatchRule::default().before)]
    collar_before: f64,
    #[arg(long, default_value_t = vigil::eval::events::MatchRule::default().after)]
    collar_after: f64,
    /// Also break detections down by this column of the event lists (e.g. `snr_db`).
    #[arg(long)]
    by: Option<String>,
    /// With --recording or --dataset: write every model input's scores here (CSV:
    /// recording, stream, time_s, label, score), to see why an event was missed.
    #[arg(long)]
    scores_out: Option<PathBuf>,
    /// With --recording or --dataset: write the alerts raised as JSON lines here.
    #[arg(long)]
    alerts_out: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn eval(args: EvalArgs) -> Result<()> {
    use vigil::eval::{events, recording};
    if let Some(scores) = &args.scores {
        let (values, labels) = vigil::eval::read_scores_csv(scores)?;
        print!("{}", vigil::eval::evaluate(&values, &labels)?.render());
        return Ok(());
    }
    let labels = if args.labels.is_empty() {
        let mut labels = vigil::models::audio_events::default_labels();
        labels.push("violence".into());
        labels
    } else {
        args.labels.clone()
    };
    let rule = events::MatchRule {
        before: args.collar_before,
        after: args.collar_after,
    };
    let mut by_column = std::collections::BTreeMap::new();
    let recordings = match (&args.dataset, &args.recording, &args.events) {
        (Some(dir), _, _) => recording::labelled_recordings(dir)?,
        (None, Some(wav), Some(events)) => vec![(wav.clone(), events.clone())],
        _ => Vec::new(),
    };
    let report = if !recordings.is_empty() {
        let Some(profile_path) = &args.profile else {
            bail!("--recording and --dataset need --profile");
        };
        let profile = vigil::profile::Profile::load(profile_path)?;
        let streams: Vec<Option<&str>> = if args.stream.is_empty() {
            vec![None]
        } else {
            args.stream.iter().map(|s| Some(s.as_str())).collect()
        };
        // Footage is decoded once, at the size and rate of the first violence stream.
        let mut footage: Option<Vec<vigil::eval::scene::Footage>> = None;
        let mut reports = Vec::new();
        let mut alert_lines = String::new();
        let mut score_lines = String::from("recording,stream,time_s,label,score\n");
        for (index, (wav, events_path)) in recordings.iter().enumerate() {
            let audio = vigil::io::wav::read_pcm(wav)?;
            // Fresh detectors per recording, as a box that was just started hears it; each
            // checks the recording before the event list is read against its length.
            let mut detectors = Vec::with_capacity(streams.len());
            for stream in &streams {
                let detector = vigil::runtime::InlineDetector::for_recordings(
                    &profile,
                    *stream,
                    args.model.as_deref(),
                )?;
                // Sound with video (MAVD-edge) is scored on a scene, the rest on the sound.
                let audio_visual =
                    matches!(detector.media(), vigil::runtime::Media::AudioVisual { .. });
                if audio_visual {
                    vigil::eval::scene::check_input(&detector, &audio, wav)?;
                } else {
                    recording::check_input(&detector, &audio, wav)?;
                }
                detectors.push((detector, audio_visual));
            }
            let mut marked = events::read_marked_events(events_path, &labels, audio.duration_s())?;
            let mut raised = Vec::new();
            for (mut detector, audio_visual) in detectors {
                let run = if audio_visual {
                    if args.footage.is_empty() {
                        bail!(
                            "stream {} runs {}, which takes video with the sound: give \
                             --footage VIDEO",
                            detector.stream(),
                            detector.model()
                        );
                    }
                    if footage.is_none() {
                        footage = Some(
                            args.footage
                                .iter()
                                .map(|path| {
                                    vigil::eval::scene::Footage::decode(path, &detector)?
                                        .from_fraction(args.footage_from)
                                })
                                .collect::<Result<_, _>>()?,
                        );
                    }
                    let all = footage.as_deref().unwrap_or_default();
                    let scene = &all[index % all.len()];
                    vigil::eval::scene::run_scene(&mut detector, &audio, scene, wav)?
                } else {
                    recording::run_recording(&mut detector, &audio, wav)?
                };
                eprintln!(
                    "{} on {}: {:.1} s scored in {:.1} s ({:.0}× real time), {} alerts opened",
                    wav.display(),
                    detector.stream(),
                    run.duration_s,
                    run.seconds,
                    run.duration_s / run.seconds.max(1e-9),
                    run.raised().len()
                );
                for alert in &run.alerts {
                    alert_lines.push_str(&serde_json::to_string(alert)?);
                    alert_lines.push('\n');
                }
                if args.scores_out.is_some() {
                    use std::fmt::Write as _;
                    for (time, scores) in &run.scores {
                        for (label, score) in scores {
                            let _ = writeln!(
                                score_lines,
                                "{},{},{time:.3},{},{score:.5}",
                                wav.display(),
                                detector.stream(),
                                label.as_str()
                            );
                        }
                    }
                }
                raised.extend(run.raised());
            }
            // Pooled alerts in time order, numbered as one list.
            raised.sort_by(|a, b| a.at.total_cmp(&b.at));
            for (line, alert) in raised.iter_mut().enumerate() {
                alert.line = line + 1;
                if let Some(label) = &args.as_label {
                    alert.label.clone_from(label);
                }
            }
            if let Some(label) = &args.as_label {
                for event in &mut marked {
                    event.label.clone_from(label);
                }
            }
            let report = events::score_events(&marked, &raised, audio.duration_s(), rule)?;
            if let Some(column) = &args.by {
                tally_by(&mut by_column, &marked, &report, events_path, column)?;
            }
            reports.push(report);
        }
        if let Some(path) = &args.alerts_out {
            std::fs::write(path, alert_lines)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = &args.scores_out {
            std::fs::write(path, score_lines)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if reports.len() > 1 {
            println!("{} recordings", reports.len());
        }
        recording::merge_reports(&reports).context("no recording was scored")?
    } else {
        let (Some(events_path), Some(alerts_path), Some(duration)) =
            (&args.events, &args.alerts, args.duration)
        else {
            bail!(
                "give --scores FILE; --events FILE with --alerts FILE --duration SECONDS or \
                 --recording WAV --profile TOML; or --dataset DIR --profile TOML"
            );
        };
        if !(duration.is_finite() && duration > 0.0) {
            bail!(
                "--duration {duration}: the recording's length must be a positive number of seconds"
            );
        }
        let mut marked = events::read_marked_events(events_path, &labels, duration)?;
        if args.stream.len() > 1 {
            bail!("--alerts comes from one stream: give --stream once");
        }
        let source = events::AlertSource {
            stream: args.stream.first().cloned(),
            model: args.model.clone(),
        };
        let mut raised = events::read_raised_alerts(alerts_path, &source, duration)?;
        if let Some(label) = &args.as_label {
            marked.iter_mut().for_each(|e| e.label.clone_from(label));
            raised.iter_mut().for_each(|a| a.label.clone_from(label));
        }
        let report = events::score_events(&marked, &raised, duration, rule)?;
        if let Some(column) = &args.by {
            tally_by(&mut by_column, &marked, &report, events_path, column)?;
        }
        report
    };
    print!("{}", report.render());
    if let Some(column) = &args.by {
        println!("\n| label | {column} | events | detected |\n|---|---|---|---|");
        for ((label, value), (count, detected)) in &by_column {
            println!(
                "| {label} | {value} | {count} | {detected} ({:.1} %) |",
                100.0 * *detected as f64 / (*count).max(1) as f64
            );
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Adds one recording's events to the per-(label, column value) counts of `--by`.
fn tally_by(
    counts: &mut std::collections::BTreeMap<(String, String), (usize, usize)>,
    marked: &[vigil::eval::events::MarkedEvent],
    report: &vigil::eval::events::EventReport,
    events_path: &Path,
    column: &str,
) -> Result<()> {
    let values = vigil::eval::events::read_event_column(events_path, column)?;
    for event in marked {
        let value = values.get(&event.line).cloned().unwrap_or_default();
        let entry = counts.entry((event.label.clone(), value)).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += usize::from(report.detected_lines.contains(&event.line));
    }
    Ok(())
}

fn mavd_score(model: &Path, rgb: &Path, audio: &Path, flow: &Path) -> Result<()> {
    use vigil::models::violence::{features, window};
    let snippets = features::read_snippets(rgb, audio, flow)?;
    let mut scorer = window::StreamingScorer::new(window::WindowModel::load(model)?);
    let mut live = Vec::with_capacity(snippets.len());
    let mut settled = Vec::with_capacity(snippets.len());
    for snippet in &snippets {
        let pushed = scorer.push(snippet)?;
        live.push(pushed.live.fused);
        settled.extend(pushed.settled);
    }
    settled.extend(scorer.finish());
    println!("snippet,start_s,live,settled,video,audio,flow");
    for (scores, live) in settled.iter().zip(&live) {
        // 16 frames at 24 fps per snippet.
        let start = scores.index as f64 * 16.0 / 24.0;
        println!(
            "{},{start:.3},{live:.6},{:.6},{:.6},{:.6},{:.6}",
            scores.index, scores.fused, scores.video, scores.audio, scores.flow
        );
    }
    Ok(())
}

fn soak(seconds: u64, streams: usize, overload: f64, work: &Path, stop: &AtomicBool) -> Result<()> {
    let texture = repo_path("models/cache/textures/brick.png");
    if let Some(reason) = factory_line_missing(&texture)? {
        bail!("vigil soak runs the factory line, which cannot run here: {reason}");
    }
    if streams == 0 || !overload.is_finite() || overload <= 0.0 {
        bail!("--streams must be at least 1 and --overload above 0");
    }
    let frames = work.join("frames");
    write_factory_frames(&texture, &frames)?;
    let config = vigil::soak::SoakConfig {
        duration: Duration::from_secs(seconds),
        streams,
        overload,
        frames,
        frame_size: FACTORY_FRAME_SIZE,
        model: FACTORY_MODEL.into(),
        work: work.to_path_buf(),
    };
    let report = vigil::soak::run(&config, stop)?;
    let failures = report.failures();
    let text = format!(
        "{}
{}
",
        report.render(),
        if failures.is_empty() {
            "soak: every check held".to_string()
        } else {
            format!("soak FAILED: {}", failures.join("; "))
        }
    );
    print!("{text}");
    let path = work.join("soak-report.txt");
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    if !failures.is_empty() {
        bail!("{} soak check(s) failed", failures.len());
    }
    Ok(())
}

fn bench(runs: usize, suite: BenchSuite) -> Result<()> {
    println!(
        "{:<44} {:>10} {:>24} {:>10} {:>8}",
        "measurement", "vigil ms", "peer", "peer ms", "ratio"
    );
    let print = |c: &vigil::bench::Comparison| {
        println!(
            "{:<44} {:>10.3} {:>24} {:>10.3} {:>8.2}",
            c.what,
            c.ours_ms,
            c.peer,
            c.peer_ms,
            c.ratio()
        );
    };
    if matches!(suite, BenchSuite::All | BenchSuite::Industrial) {
        // PatchCore first: the peak memory it reports is then a PatchCore stream's alone.
        let patchcore = vigil::bench::patchcore(runs.clamp(5, 50), 5.0)?;
        print(&patchcore.backbone);
        match patchcore.backbone_int8_peer_ms {
            Some(ms) => println!(
                "  onnxruntime's own int8 of the same backbone (quantize_static, QDQ): {ms:.3} ms; vigil fp32 / that = {:.2}",
                patchcore.backbone.ours_ms / ms
            ),
            None => println!("  onnxruntime's own int8 of the backbone: its quantizer failed"),
        }
        print(&patchcore.search);
        print(&patchcore.frame);
        println!(
            "factory-line pipeline ({}: prepare, detect, decide on their own threads): {:.1} frames/s \
             ({} decided, {} dropped by drop-oldest); peak memory {:.0} MiB",
            patchcore.model,
            patchcore.pipeline_fps,
            patchcore.frames_decided,
            patchcore.frames_dropped,
            patchcore.peak_rss_mib
        );
        let isstad = vigil::bench::isstad_edge(runs.clamp(5, 50), 5.0)?;
        print(&isstad.int8);
        println!(
            "isstad-edge-brick-fp32, same frame, 1 thread: {:.3} ms; int8 is {:.2}× as fast as fp32 (median of back-to-back pairs)",
            isstad.fp32_ms, isstad.int8_speedup
        );
        println!(
            "factory-line pipeline (prepare, int8 detect, anomaly map and decide on their own threads): \
             {:.1} frames/s ({} decided, {} dropped by drop-oldest); peak memory {:.0} MiB",
            isstad.pipeline_fps, isstad.frames_decided, isstad.frames_dropped, isstad.peak_rss_mib
        );
        if suite == BenchSuite::Industrial {
            println!("ratio = vigil / peer: below 1 means vigil is faster");
            return Ok(());
        }
    }
    if matches!(suite, BenchSuite::All | BenchSuite::Hsi) {
        for comparison in vigil::bench::hsi_rx(runs.clamp(5, 50))? {
            print(&comparison);
        }
        let lines = vigil::bench::streaming_bench_lines(512, 200)?;
        for refresh in [1, 8] {
            let lines_per_s = vigil::bench::streaming_rx_lines_per_s(&lines, refresh, 3.0)?;
            println!(
                "streaming RX, 512 px × 200 bands, covariance refactored every {refresh} line(s), 2 threads: {lines_per_s:.0} lines/s"
            );
            if refresh == 1 {
                let (peer, threads) = vigil::bench::streaming_rx_peer(&lines, 3.0)?;
                println!(
                    "  the same per line in numpy + scipy ({threads} BLAS thread(s), the faster of 1 and 2): {peer:.0} lines/s; vigil is {:.1}× as fast",
                    lines_per_s / peer
                );
            }
        }
        for comparison in vigil::bench::fers_edge(runs.clamp(5, 50))? {
            print(&comparison);
        }
    }
    if suite == BenchSuite::Hsi {
        println!("ratio = vigil / peer: below 1 means vigil is faster");
        return Ok(());
    }
    let yamnet = vigil::bench::yamnet(runs)?;
    print(&yamnet);
    for comparison in vigil::bench::mel(runs.clamp(5, 50))? {
        print(&comparison);
    }
    let overhead = vigil::bench::pipeline_overhead(3.0)?;
    println!(
        "pipeline hand-off prepare → detect → decide at 1000 messages/s: median {:.3} ms, p99 {:.3} ms \
         ({} of {} delivered), median {:.1} % of one YAMNet inference",
        overhead.median_ms,
        overhead.p99_ms,
        overhead.delivered,
        overhead.sent,
        100.0 * overhead.median_ms / yamnet.ours_ms
    );
    println!("ratio = vigil / peer: below 1 means vigil is faster");
    Ok(())
}
