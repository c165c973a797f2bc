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
    /// Measure vigil against peers in the same run (onnxruntime, numpy/librosa) and print
    /// the ratios.
    Bench {
        /// Timed runs per measurement.
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
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
            log::info!("demo: 12 s of generated speech-like audio with gunshots at 3 s and 8 s");
            vigil::runtime::run(&profile, &stop).map_err(|err| anyhow::anyhow!(err))?;
        }
        Command::Info { model } => {
            let manifest = Manifest::shipped().ok();
            let spec = manifest.as_ref().and_then(|m| m.model(&model).ok());
            let report = vigil::detector::inspect::inspect(&model, manifest.as_ref())
                .with_context(|| format!("cannot inspect {model}"))?;
            print!("{}", report.render(spec));
        }
        Command::Bench { runs } => bench(runs)?,
        Command::Eval { scores } => {
            let (values, labels) = vigil::eval::read_scores_csv(&scores)?;
            print!("{}", vigil::eval::evaluate(&values, &labels)?.render());
        }
    }
    Ok(())
}

fn bench(runs: usize) -> Result<()> {
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
