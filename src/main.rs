//! `vigil`: the edge runtime's command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

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
    /// Run the demo: generated audio with gunshots through YAMNet, alerts as JSON lines.
    Demo,
    /// Describe a model (manifest name or .onnx path): tensors, and which operators run on
    /// int8 kernels after tract's optimization.
    Info { model: String },
    /// Evaluate a score file (CSV with a header holding `score` and `label` columns): ROC AUC,
    /// average precision, PR AUC (trapezoid, as the XD-Violence code reports "AP"), F1-max.
    Eval {
        #[arg(long)]
        scores: PathBuf,
    },
    /// Score one hyperspectral scene (ENVI `.hdr`, `.npy` H×W×B, MATLAB v5 `.mat`) with a
    /// conventional detector; write the H×W float32 score map as `.npy` and, optionally, a PNG.
    Hsi(HsiArgs),
    /// Measure vigil against peers in the same run (onnxruntime, numpy/librosa) and print
    /// the ratios.
    Bench {
        /// Timed runs per measurement.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Which measurements: all, audio (YAMNet, log-mel, pipeline) or hsi (RX, streaming).
        #[arg(long, value_enum, default_value = "all")]
        suite: BenchSuite,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchSuite {
    All,
    Audio,
    Hsi,
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

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    // Set by SIGINT or SIGTERM: open events are ended and every alert reaches the journal.
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = stop.clone();
    ctrlc::set_handler(move || handler_stop.store(true, Ordering::SeqCst))
        .context("cannot install the SIGINT/SIGTERM handler")?;
    match cli.command {
        Command::Check { profile } => {
            let loaded = Profile::load(&profile)?;
            for line in vigil::runtime::check(&loaded)? {
                println!("{line}");
            }
            println!("{}: ok", profile.display());
        }
        Command::Run { profile } => {
            vigil::runtime::run(&profile, &stop).map_err(|err| anyhow::anyhow!(err))?;
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
            vigil::runtime::run(&profile, &stop).map_err(|err| anyhow::anyhow!(err))?;
        }
        Command::Info { model } => {
            let manifest = Manifest::shipped().ok();
            let spec = manifest.as_ref().and_then(|m| m.model(&model).ok());
            let report = vigil::detector::inspect::inspect(&model, manifest.as_ref())
                .with_context(|| format!("cannot inspect {model}"))?;
            print!("{}", report.render(spec));
        }
        Command::Bench { runs, suite } => bench(runs, suite)?,
        Command::Hsi(args) => hsi(args)?,
        Command::Eval { scores } => {
            let (values, labels) = vigil::eval::read_scores_csv(&scores)?;
            print!("{}", vigil::eval::evaluate(&values, &labels)?.render());
        }
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
    if suite != BenchSuite::Audio {
        for comparison in vigil::bench::hsi_rx(runs.clamp(5, 50))? {
            print(&comparison);
        }
        for refresh in [1, 8] {
            let lines_per_s = vigil::bench::streaming_rx_lines_per_s(512, 200, refresh, 3.0)?;
            println!(
                "streaming RX, 512 px × 200 bands, covariance refactored every {refresh} line(s), 2 threads: {lines_per_s:.0} lines/s"
            );
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
