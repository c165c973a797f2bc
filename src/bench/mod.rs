//! `vigil bench`: speed measured against a peer in the same run, reported as ratios, since
//! absolute times on a shared machine mean little.
//!
//! - YAMNet int8: vigil (tract) against onnxruntime on the same ONNX file, the same patches and
//!   the same thread count (1: tract runs one inference on one thread).
//! - Log-mel front end: vigil's Rust streaming front end against the numpy reference and
//!   librosa on the same 10 s of audio.
//! - Pipeline overhead: the cost per message of vigil's threads and channels with stages that
//!   do nothing, as a fraction of one YAMNet inference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::capture::synth::{SynthConfig, SynthEvent, SynthEventKind, SynthSource, render};
use crate::capture::{Sample, Stamp};
use crate::detector::{Manifest, Plan};
use crate::io::npy::{read_npy, write_npy};
use crate::metrics::Metrics;
use crate::models::audio_events::{MelPatch, YamnetDetector};
use crate::pipeline::{Decide, Detect, Pipeline, PipelineSettings, Prepare, StageError};
use crate::prepare::mel::log_mel;

pub mod models;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("peer {peer} failed: {detail}")]
    Peer { peer: String, detail: String },
}

/// One comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub what: String,
    pub ours_ms: f64,
    pub peer: String,
    pub peer_ms: f64,
}

impl Comparison {
    /// Our time over the peer's: below 1 means vigil is faster.
    pub fn ratio(&self) -> f64 {
        self.ours_ms / self.peer_ms
    }
}

fn setup(detail: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(detail.to_string())
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(f64::NAN)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a peer script and reads the JSON object it prints.
fn peer_json(script: &Path, args: &[String]) -> Result<serde_json::Value, BenchError> {
    peer_json_with(script, args, &[])
}

/// [`peer_json`] with extra environment variables for the peer (its BLAS threads, say).
fn peer_json_with(
    script: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<serde_json::Value, BenchError> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let peer = script.display().to_string();
    let output = Command::new(&python)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .map_err(|err| BenchError::Peer {
            peer: peer.clone(),
            detail: format!("cannot run {python}: {err}"),
        })?;
    if !output.status.success() {
        return Err(BenchError::Peer {
            peer,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|err| BenchError::Peer {
        peer,
        detail: format!("{err}: {last}"),
    })
}

fn number(value: &serde_json::Value, key: &str) -> Result<f64, BenchError> {
    value[key]
        .as_f64()
        .ok_or_else(|| setup(format!("peer output lacks {key}: {value}")))
}

/// YAMNet latency per patch in vigil and in onnxruntime.
pub fn yamnet(runs: usize) -> Result<Comparison, BenchError> {
    let manifest = Manifest::shipped().map_err(setup)?;
    let plan = Plan::load(&manifest, "yamnet").map_err(setup)?;
    let mut detector = YamnetDetector::new(&plan).map_err(setup)?;
    let patches_path = repo().join("tests/fixtures/yamnet/patches.npy");
    let patches = read_npy::<u8>(&patches_path).map_err(setup)?;
    let per = 96 * 64;
    let count = patches.data.len() / per;
    let patch = |i: usize| MelPatch {
        quantized: patches.data[(i % count) * per..(i % count + 1) * per].to_vec(),
        start: Duration::ZERO,
        end: Duration::ZERO,
    };
    for i in 0..10 {
        detector.run(&patch(i)).map_err(setup)?;
    }
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let input = patch(i);
        let start = Instant::now();
        detector.run(&input).map_err(setup)?;
        times.push(start.elapsed());
    }
    let model = manifest.path_of(plan.spec().onnx_file());
    let (peer, peer_ms) = onnxruntime_median_ms(&model, &patches_path, runs)?;
    Ok(Comparison {
        what: "YAMNet int8, one 0.96 s patch, 1 thread".into(),
        ours_ms: median_ms(times),
        peer,
        peer_ms,
    })
}

/// onnxruntime's median single-thread latency of `model` on the inputs in `inputs` (a batch
/// along axis 0, fed one at a time), and its name with version.
fn onnxruntime_median_ms(
    model: &Path,
    inputs: &Path,
    runs: usize,
) -> Result<(String, f64), BenchError> {
    let peer = peer_json(
        &repo().join("scripts/bench/onnxruntime_peer.py"),
        &[
            model.display().to_string(),
            inputs.display().to_string(),
            "--threads".into(),
            "1".into(),
            "--runs".into(),
            runs.to_string(),
        ],
    )?;
    Ok((
        format!("onnxruntime {}", peer["version"].as_str().unwrap_or("?")),
        number(&peer, "median_ms")?,
    ))
}

/// The log-mel front end on 10 s of audio, against numpy and librosa.
pub fn mel(runs: usize) -> Result<Vec<Comparison>, BenchError> {
    let audio = render(&SynthConfig {
        rate: 16_000,
        duration_s: 10.0,
        events: vec![SynthEvent {
            at_s: 4.0,
            kind: SynthEventKind::Gunshot,
        }],
        realtime: false,
        block_ms: 100,
        seed: 1,
    });
    let dir = tempfile_dir()?;
    let input = dir.join("audio.npy");
    write_npy(&input, &[audio.len()], &audio).map_err(setup)?;
    log_mel(&audio).map_err(setup)?;
    let times = (0..runs)
        .map(|_| {
            let start = Instant::now();
            log_mel(&audio).map(|_| start.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(setup)?;
    let ours = median_ms(times);
    let peer = peer_json(
        &repo().join("scripts/reference/bench_mel.py"),
        &[
            input.display().to_string(),
            "--runs".into(),
            runs.to_string(),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let peer = peer?;
    Ok(vec![
        Comparison {
            what: "log-mel, 10 s at 16 kHz".into(),
            ours_ms: ours,
            peer: "numpy reference".into(),
            peer_ms: number(&peer, "numpy_ms")?,
        },
        Comparison {
            what: "log-mel, 10 s at 16 kHz".into(),
            ours_ms: ours,
            peer: "librosa".into(),
            peer_ms: number(&peer, "librosa_ms")?,
        },
    ])
}

/// Stamps each message with the moment the prepare stage handed it on.
struct Handoff;

impl Prepare for Handoff {
    type Output = Instant;
    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, Instant),
    ) -> Result<(), StageError> {
        emit(*sample.stamp(), Instant::now());
        Ok(())
    }
}

impl Detect for Handoff {
    type Input = Instant;
    type Output = Instant;
    fn detect(&mut self, input: Instant) -> Result<Instant, StageError> {
        Ok(input)
    }
}

/// Records how long each message took from prepare to decide.
struct Latencies(std::sync::Arc<std::sync::Mutex<Vec<Duration>>>);

impl Decide for Latencies {
    type Input = Instant;
    fn decide(&mut self, _: Stamp, handed_on: Instant, _: &mut dyn FnMut(Alert)) {
        let elapsed = handed_on.elapsed();
        if let Ok(mut all) = self.0.lock() {
            all.push(elapsed);
        }
    }
    fn finish(&mut self, _: &mut dyn FnMut(Alert)) {}
}

/// What the pipeline itself costs per message.
#[derive(Debug, Clone, Copy)]
pub struct Overhead {
    /// Median and 99th percentile time from the prepare stage handing a message on to the
    /// decide stage receiving it: two queue hops and two thread wake-ups.
    pub median_ms: f64,
    pub p99_ms: f64,
    pub delivered: usize,
    pub sent: usize,
}

/// Runs stages that do nothing at a microphone's pace (1 ms blocks, 1000 messages a second)
/// for `seconds`, and measures the hand-off time through the stage threads.
pub fn pipeline_overhead(seconds: f32) -> Result<Overhead, BenchError> {
    let block_ms = 1;
    let source = SynthSource::new(SynthConfig {
        rate: 16_000,
        duration_s: seconds,
        events: vec![],
        realtime: true,
        block_ms,
        seed: 0,
    })
    .map_err(setup)?;
    let sent = (seconds * 1000.0 / block_ms as f32).round() as usize;
    let metrics = Metrics::new();
    let (alerts, _rx) = crossbeam_channel::bounded(1);
    let latencies = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(sent)));
    let pipeline = Pipeline::spawn(
        "bench",
        source,
        Handoff,
        Handoff,
        Latencies(latencies.clone()),
        alerts,
        &metrics,
        PipelineSettings::default(),
    )
    .map_err(setup)?;
    pipeline.wait().map_err(setup)?;
    let mut all = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .map(|d| d.as_secs_f64() * 1e3)
    };
    Ok(Overhead {
        median_ms: at(0.5).unwrap_or(f64::NAN),
        p99_ms: at(0.99).unwrap_or(f64::NAN),
        delivered: all.len(),
        sent,
    })
}

/// The hyperspectral scene `vigil bench` times RX on: ABU urban-4 (100×100×205, the size the
/// issue's target is stated for) when `../shared/data/hsi` is beside the checkout, else a
/// synthetic cube of the same size.
fn rx_bench_cube() -> Result<(crate::hsi::Cube, String), BenchError> {
    let urban = repo().join("../shared/data/hsi/abu-urban-4.mat");
    if urban.exists() {
        let scene = crate::hsi::read_scene(&urban).map_err(setup)?;
        return Ok((scene.cube, "ABU urban-4 100×100×205".into()));
    }
    let cube = crate::hsi::synthetic::Scene::generate(&crate::hsi::synthetic::SceneConfig {
        rows: 100,
        cols: 100,
        bands: 205,
        ..Default::default()
    })
    .map_err(setup)?
    .cube;
    Ok((cube, "synthetic 100×100×205".into()))
}

/// Global RX on a 100×100×205 cube in vigil (2 threads) against SPy's `rx` and a float64
/// numpy RX, both on the same cube.
pub fn hsi_rx(runs: usize) -> Result<Vec<Comparison>, BenchError> {
    let (cube, what) = rx_bench_cube()?;
    let detector = crate::hsi::detect::SceneDetector::Rx;
    detector.score(&cube, 2).map_err(setup)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        detector.score(&cube, 2).map_err(setup)?;
        times.push(start.elapsed());
    }
    let ours = median_ms(times);
    let dir = tempfile_dir()?;
    let path = dir.join("cube.npy");
    write_npy(
        &path,
        &[cube.rows(), cube.cols(), cube.bands()],
        cube.data(),
    )
    .map_err(setup)?;
    let peer = peer_json(
        &repo().join("scripts/bench/hsi_peer.py"),
        &[
            "--cube".into(),
            path.display().to_string(),
            "--repeats".into(),
            runs.to_string(),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let peer = peer?;
    Ok(vec![
        Comparison {
            what: format!("global RX, {what}, 2 threads"),
            ours_ms: ours,
            peer: format!("SPy {} rx", peer["spy_version"].as_str().unwrap_or("?")),
            peer_ms: number(&peer, "spy_rx_ms")?,
        },
        Comparison {
            what: format!("global RX, {what}, 2 threads"),
            ours_ms: ours,
            peer: "numpy float64 RX".into(),
            peer_ms: number(&peer, "numpy_rx_ms")?,
        },
    ])
}

/// FERS-edge latency on one 64×64 tile of the first 200 bands of the RX bench scene (a
/// 100×100 scene is four tiles), one thread, for the shipped int8 graph and its fp32 original,
/// each against onnxruntime running the same ONNX file on the same tile.
pub fn fers_edge(runs: usize) -> Result<Vec<Comparison>, BenchError> {
    use crate::hsi::fers::normalise;
    const BANDS: usize = 200;
    const TILE: usize = 64;
    let manifest = Manifest::shipped().map_err(setup)?;
    let (cube, what) = rx_bench_cube()?;
    let scene = normalise(&cube.first_bands(BANDS).map_err(setup)?).map_err(setup)?;
    let values: Vec<f32> = (0..TILE)
        .flat_map(|row| scene.line(row)[..TILE * BANDS].to_vec())
        .collect();
    let tile = crate::hsi::Cube::from_bip(TILE, TILE, BANDS, values).map_err(setup)?;
    let dir = tempfile_dir()?;
    let path = dir.join("tile.npy");
    write_npy(&path, &[1, TILE, TILE, BANDS], tile.data()).map_err(setup)?;
    let what = format!("one {TILE}×{TILE} tile of {what}, 1 thread");
    let comparisons = ["fers-edge-200", "fers-edge-200-fp32"]
        .into_iter()
        .map(|name| fers_edge_tile(&manifest, name, &tile, &path, &what, runs))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    comparisons
}

/// One FERS-edge graph on `tile` in vigil, and in onnxruntime on the same tile saved at
/// `tile_npy`.
fn fers_edge_tile(
    manifest: &Manifest,
    name: &str,
    tile: &crate::hsi::Cube,
    tile_npy: &Path,
    what: &str,
    runs: usize,
) -> Result<Comparison, BenchError> {
    let model = crate::hsi::fers::FersEdge::load(manifest, name).map_err(setup)?;
    for _ in 0..3 {
        model.features(tile).map_err(setup)?;
    }
    let times = (0..runs)
        .map(|_| {
            let start = Instant::now();
            model.features(tile).map(|_| start.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(setup)?;
    let spec = manifest.model(name).map_err(setup)?;
    let (peer, peer_ms) =
        onnxruntime_median_ms(&manifest.path_of(spec.onnx_file()), tile_npy, runs)?;
    Ok(Comparison {
        what: format!("{name}, {what}"),
        ours_ms: median_ms(times),
        peer,
        peer_ms,
    })
}

/// A scratch folder for the files peers read; callers remove it when done.
fn tempfile_dir() -> Result<PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|err| setup(format!("{err}: {}", dir.display())))?;
    Ok(dir)
}

/// The lines the streaming RX benches replay: a synthetic 64-line scene, made once and handed
/// to [`streaming_rx_lines_per_s`] and [`streaming_rx_peer`].
pub fn streaming_bench_lines(width: usize, bands: usize) -> Result<crate::hsi::Cube, BenchError> {
    let scene = crate::hsi::synthetic::Scene::generate(&crate::hsi::synthetic::SceneConfig {
        rows: 64,
        cols: width,
        bands,
        ..Default::default()
    })
    .map_err(setup)?;
    Ok(scene.cube)
}

/// Streaming RX throughput: lines per second over the lines of `cube` replayed for `seconds`,
/// refactoring the covariance every `refresh_every_lines` lines (1 = exact causal RX).
pub fn streaming_rx_lines_per_s(
    cube: &crate::hsi::Cube,
    refresh_every_lines: usize,
    seconds: f64,
) -> Result<f64, BenchError> {
    let mut rx = crate::hsi::streaming::StreamingRx::new(
        cube.cols(),
        cube.bands(),
        crate::hsi::streaming::StreamingSettings {
            refresh_every_lines,
            ..Default::default()
        },
        faer::Par::rayon(2),
    )
    .map_err(setup)?;
    // Warm up past the hold-back so every timed line is scored.
    for row in 0..4 {
        rx.push_line(cube.line(row)).map_err(setup)?;
    }
    let start = Instant::now();
    let mut lines = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let scored = rx
            .push_line(cube.line(lines as usize % cube.rows()))
            .map_err(setup)?;
        std::hint::black_box(scored);
        lines += 1;
    }
    Ok(lines as f64 / start.elapsed().as_secs_f64())
}

/// The same exact causal RX per line in numpy and scipy (`scripts/bench/streaming_peer.py`)
/// on the lines of `cube`, with 1 and with 2 BLAS threads: the faster, in lines per second,
/// and its thread count. Two OpenBLAS copies (numpy's and scipy's) fight over two cores, so one
/// thread is often the faster here.
pub fn streaming_rx_peer(cube: &crate::hsi::Cube, seconds: f64) -> Result<(f64, u32), BenchError> {
    let dir = tempfile_dir()?;
    let path = dir.join("lines.npy");
    let written = write_npy(
        &path,
        &[cube.rows(), cube.cols(), cube.bands()],
        cube.data(),
    )
    .map_err(setup);
    let script = repo().join("scripts/bench/streaming_peer.py");
    let args = [
        "--lines".to_string(),
        path.display().to_string(),
        "--seconds".into(),
        seconds.to_string(),
    ];
    let runs = written.and_then(|()| {
        [1u32, 2]
            .into_iter()
            .map(|threads| {
                let threads_text = threads.to_string();
                let env = [
                    ("OPENBLAS_NUM_THREADS", threads_text.as_str()),
                    ("OMP_NUM_THREADS", threads_text.as_str()),
                ];
                let peer = peer_json_with(&script, &args, &env)?;
                Ok((number(&peer, "lines_per_s")?, threads))
            })
            .collect::<Result<Vec<_>, BenchError>>()
    });
    let _ = std::fs::remove_dir_all(&dir);
    Ok(runs?.into_iter().fold(
        (0.0, 1),
        |best, run| if run.0 > best.0 { run } else { best },
    ))
}

/// ISSTAD-edge speed, in one run: the int8 graph in vigil against onnxruntime on the same file
/// and thread count, int8 against fp32 in vigil, the frame rate the whole pipeline sustains,
/// and the process's peak memory.
#[derive(Debug, Clone)]
pub struct IsstadBench {
    /// The int8 graph, one 224×224 frame, 1 thread: vigil (tract) and onnxruntime.
    pub int8: Comparison,
    /// The fp32 graph in vigil, same frame and thread.
    pub fp32_ms: f64,
    /// fp32 time over int8 time, the median over back-to-back pairs of runs: on a shared
    /// machine whose speed drifts by half within minutes, the ratio of two medians taken
    /// minutes apart says more about the neighbours than about int8.
    pub int8_speedup: f64,
    /// Frames per second through prepare → detect → decide (anomaly map, boxes, snapshots
    /// off), each stage on its own thread, frames offered as fast as the source can.
    pub pipeline_fps: f64,
    pub frames_decided: u64,
    pub frames_dropped: u64,
    /// Peak resident memory of the process (`VmHWM`), in MiB, after all of the above.
    pub peak_rss_mib: f64,
}

/// The brick part as the factory-line demo's camera sees it: a 192×192 crop from rows the
/// shipped model never trained on.
fn isstad_frame() -> Result<crate::capture::VideoFrame, BenchError> {
    let path = repo().join("models/cache/textures/brick.png");
    let brick = crate::io::png::read_png(&path).map_err(setup)?;
    let (side, top) = (192, 312);
    if brick.width < side || brick.height < top + side {
        return Err(setup(format!("{} is too small", path.display())));
    }
    let rgb = (top..top + side)
        .flat_map(|row| brick.pixels[row * brick.width * 3..][..side * 3].to_vec())
        .collect();
    Ok(crate::capture::VideoFrame {
        stamp: Stamp {
            pts: Duration::ZERO,
            captured_at: std::time::SystemTime::now(),
            seq: 0,
        },
        width: side as u32,
        height: side as u32,
        rgb,
    })
}

/// Median latencies of the int8 and fp32 graphs on `input`, and the median over `runs` pairs
/// of the fp32/int8 ratio, each pair run back to back (alternating which goes first).
fn isstad_int8_against_fp32(
    manifest: &Manifest,
    int8: &str,
    fp32: &str,
    input: &[f32],
    runs: usize,
) -> Result<(f64, f64, f64), BenchError> {
    let detector = |name: &str| {
        let plan = Plan::load(manifest, name).map_err(setup)?;
        crate::models::industrial::IsstadDetector::new(&plan).map_err(setup)
    };
    let (mut quantized, mut float) = (detector(int8)?, detector(fp32)?);
    for _ in 0..3 {
        quantized.run(input).map_err(setup)?;
        float.run(input).map_err(setup)?;
    }
    let time = |detector: &mut crate::models::industrial::IsstadDetector| {
        let start = Instant::now();
        detector.run(input).map(|_| start.elapsed()).map_err(setup)
    };
    let (mut int8_times, mut fp32_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..runs {
        let (q, f) = if pair % 2 == 0 {
            let q = time(&mut quantized)?;
            (q, time(&mut float)?)
        } else {
            let f = time(&mut float)?;
            (time(&mut quantized)?, f)
        };
        ratios.push(f.as_secs_f64() / q.as_secs_f64());
        int8_times.push(q);
        fp32_times.push(f);
    }
    ratios.sort_by(f64::total_cmp);
    Ok((
        median_ms(int8_times),
        median_ms(fp32_times),
        ratios[ratios.len() / 2],
    ))
}

pub fn isstad_edge(runs: usize, pipeline_seconds: f64) -> Result<IsstadBench, BenchError> {
    use crate::models::industrial::{
        IndustrialDetector, IndustrialPrepare, IndustrialSpec, IsstadDetector, IsstadSpec,
        Normalisation,
    };
    const INT8: &str = "isstad-edge-brick";
    const FP32: &str = "isstad-edge-brick-fp32";
    let manifest = Manifest::shipped().map_err(setup)?;
    let frame = isstad_frame()?;
    let spec = IsstadSpec::from_manifest(manifest.model(INT8).map_err(setup)?).map_err(setup)?;
    let mut prepare =
        IndustrialPrepare::new(spec.side, Normalisation::Half, None).map_err(setup)?;
    let input = prepare.frame(&frame).map_err(setup)?.image;
    let (ours_ms, fp32_ms, int8_speedup) =
        isstad_int8_against_fp32(&manifest, INT8, FP32, &input, runs.max(1))?;
    let dir = tempfile_dir()?;
    let npy = dir.join("frame.npy");
    write_npy(&npy, &[1, 3, spec.side, spec.side], &input).map_err(setup)?;
    let int8_file = manifest.path_of(manifest.model(INT8).map_err(setup)?.onnx_file());
    let peer = onnxruntime_median_ms(&int8_file, &npy, runs);
    let _ = std::fs::remove_dir_all(&dir);
    let (peer, peer_ms) = peer?;

    let plan = Plan::load(&manifest, INT8).map_err(setup)?;
    let rate = industrial_pipeline_rate(
        &IndustrialSpec::Isstad(spec.clone()),
        IndustrialPrepare::new(spec.side, Normalisation::Half, None).map_err(setup)?,
        IndustrialDetector::Isstad(IsstadDetector::new(&plan).map_err(setup)?),
        frame,
        pipeline_seconds,
    )?;
    Ok(IsstadBench {
        int8: Comparison {
            what: format!("{INT8}, one {0}×{0} frame, 1 thread", spec.side),
            ours_ms,
            peer,
            peer_ms,
        },
        fp32_ms,
        int8_speedup,
        pipeline_fps: rate.fps,
        frames_decided: rate.decided,
        frames_dropped: rate.dropped,
        peak_rss_mib: peak_rss_mib().unwrap_or(f64::NAN),
    })
}

/// PatchCore's speed, in one run: the backbone and the search in vigil against their peers in
/// their own best form (onnxruntime's fp32 and its own int8 of the same graph; numpy's BLAS
/// product search), the whole frame, the frame rate the pipeline sustains, and peak memory.
#[derive(Debug, Clone)]
pub struct PatchCoreBench {
    pub model: String,
    /// The backbone graph on one 224×224 frame, 1 thread: tract against onnxruntime fp32.
    pub backbone: Comparison,
    /// onnxruntime on its own int8 of the backbone (`None` when its quantizer failed).
    pub backbone_int8_peer_ms: Option<f64>,
    /// Nearest neighbours of the frame's patches in the bank: vigil against numpy.
    pub search: Comparison,
    pub bank_patches: usize,
    /// The whole detector (backbone, search, map, score) against the best peer backbone plus
    /// numpy's search.
    pub frame: Comparison,
    pub pipeline_fps: f64,
    pub frames_decided: u64,
    pub frames_dropped: u64,
    /// Peak resident memory of the process (`VmHWM`) in MiB after the pipeline: the bench
    /// runs PatchCore first, so this is one PatchCore stream's process.
    pub peak_rss_mib: f64,
}

/// 224×224 crops of the brick texture from rows the shipped bank never saw (make-data keeps the
/// bottom half for tests), `count` of them along the row.
fn patchcore_frames(count: usize) -> Result<Vec<crate::capture::VideoFrame>, BenchError> {
    let path = repo().join("models/cache/textures/brick.png");
    let brick = crate::io::png::read_png(&path).map_err(setup)?;
    let (side, top) = (224, 272);
    if brick.width < side + 8 * count || brick.height < top + side {
        return Err(setup(format!("{} is too small", path.display())));
    }
    Ok((0..count)
        .map(|index| {
            let left = 8 * index;
            let rgb = (top..top + side)
                .flat_map(|row| brick.pixels[(row * brick.width + left) * 3..][..side * 3].to_vec())
                .collect();
            crate::capture::VideoFrame {
                stamp: Stamp {
                    pts: Duration::ZERO,
                    captured_at: std::time::SystemTime::now(),
                    seq: index as u64,
                },
                width: side as u32,
                height: side as u32,
                rgb,
            }
        })
        .collect())
}

pub fn patchcore(runs: usize, pipeline_seconds: f64) -> Result<PatchCoreBench, BenchError> {
    use crate::models::industrial::patchcore::bank::MemoryBank;
    use crate::models::industrial::patchcore::search::NearestNeighbours;
    use crate::models::industrial::patchcore::{PatchCoreDetector, PatchCoreSpec, PatchFeatures};
    use crate::models::industrial::{
        IndustrialDetector, IndustrialPrepare, IndustrialSpec, Normalisation,
    };
    const MODEL: &str = "patchcore-brick";
    let manifest = Manifest::shipped().map_err(setup)?;
    let entry = manifest.model(MODEL).map_err(setup)?;
    let spec = PatchCoreSpec::from_manifest(entry, &manifest.dir).map_err(setup)?;
    let plan = Plan::load(&manifest, MODEL).map_err(setup)?;
    let frames = patchcore_frames(8)?;
    let mut prepare =
        IndustrialPrepare::new(spec.side, Normalisation::ImageNet, None).map_err(setup)?;
    let inputs: Vec<Vec<f32>> = frames
        .iter()
        .map(|frame| prepare.frame(frame).map(|input| input.image))
        .collect::<Result<_, _>>()
        .map_err(setup)?;
    let input = &inputs[0];
    let runs = runs.max(1);
    let time = |run: &mut dyn FnMut() -> Result<(), BenchError>| {
        for _ in 0..3 {
            run()?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            run()?;
            times.push(start.elapsed());
        }
        Ok::<f64, BenchError>(median_ms(times))
    };

    let mut features = PatchFeatures::new(&plan, spec.side, spec.taps.clone()).map_err(setup)?;
    let backbone_ms = time(&mut || features.extract(input).map(|_| ()).map_err(setup))?;
    let queries = features.extract(input).map_err(setup)?.to_vec();
    let bank = MemoryBank::read(&spec.bank).map_err(setup)?;
    let dim = bank.header.feature_dim;
    let bank_patches = bank.header.patches;
    let mut search = NearestNeighbours::new(bank.features.clone(), dim, 1).map_err(setup)?;
    let patches = queries.len() / dim;
    let (mut distances, mut nearest) = (vec![0.0; patches], vec![0u32; patches]);
    let search_ms = time(&mut || {
        search
            .search(&queries, &mut distances, &mut nearest)
            .map_err(setup)
    })?;
    let mut detector = PatchCoreDetector::new(&plan, spec.clone(), 1).map_err(setup)?;
    let frame_ms = time(&mut || detector.run(input).map(|_| ()).map_err(setup))?;

    let dir = tempfile_dir()?;
    let side = spec.side;
    let inputs_npy = dir.join("frames.npy");
    write_npy(
        &inputs_npy,
        &[inputs.len(), 3, side, side],
        &inputs.concat(),
    )
    .map_err(setup)?;
    let bank_npy = dir.join("bank.npy");
    write_npy(&bank_npy, &[bank_patches, dim], &bank.features).map_err(setup)?;
    let queries_npy = dir.join("queries.npy");
    write_npy(&queries_npy, &[patches, dim], &queries).map_err(setup)?;
    let backbone_file = manifest.path_of(entry.onnx_file());
    let peer = peer_json(
        &repo().join("scripts/bench/patchcore_peer.py"),
        &[
            backbone_file.display().to_string(),
            inputs_npy.display().to_string(),
            bank_npy.display().to_string(),
            queries_npy.display().to_string(),
            "--runs".into(),
            runs.to_string(),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let peer = peer?;
    let version = format!("onnxruntime {}", peer["version"].as_str().unwrap_or("?"));
    let fp32_peer = number(&peer, "fp32_ms")?;
    let int8_peer = peer["int8_ms"].as_f64();
    let search_peer = number(&peer, "search_ms")?;
    let best_backbone = int8_peer.map_or(fp32_peer, |int8| int8.min(fp32_peer));

    let rate = industrial_pipeline_rate(
        &IndustrialSpec::PatchCore(spec.clone()),
        IndustrialPrepare::new(side, Normalisation::ImageNet, None).map_err(setup)?,
        IndustrialDetector::new(&plan, &manifest.dir).map_err(setup)?,
        frames[0].clone(),
        pipeline_seconds,
    )?;
    Ok(PatchCoreBench {
        model: MODEL.into(),
        backbone: Comparison {
            what: format!("{MODEL} backbone, {side}×{side}, 1 thread (fp32)"),
            ours_ms: backbone_ms,
            peer: format!("{version} fp32"),
            peer_ms: fp32_peer,
        },
        backbone_int8_peer_ms: int8_peer,
        search: Comparison {
            what: format!("{MODEL} search, {patches} patches × {bank_patches}"),
            ours_ms: search_ms,
            peer: format!("numpy {} 1 thread", peer["numpy"].as_str().unwrap_or("?")),
            peer_ms: search_peer,
        },
        bank_patches,
        frame: Comparison {
            what: format!("{MODEL} whole frame, 1 thread"),
            ours_ms: frame_ms,
            peer: "best onnxruntime + numpy".into(),
            peer_ms: best_backbone + search_peer,
        },
        pipeline_fps: rate.fps,
        frames_decided: rate.decided,
        frames_dropped: rate.dropped,
        peak_rss_mib: peak_rss_mib().unwrap_or(f64::NAN),
    })
}

/// What the factory-line pipeline sustains: frames decided per second, frames decided and
/// dropped, with `frame` offered as fast as the source can for `seconds`.
#[derive(Debug, Clone, Copy)]
struct PipelineRate {
    fps: f64,
    decided: u64,
    dropped: u64,
}

fn industrial_pipeline_rate(
    model: &crate::models::industrial::IndustrialSpec,
    prepare: crate::models::industrial::IndustrialPrepare,
    detect: crate::models::industrial::IndustrialDetector,
    frame: crate::capture::VideoFrame,
    seconds: f64,
) -> Result<PipelineRate, BenchError> {
    use crate::models::industrial::{IndustrialDecide, IndustrialSettings};
    let decided = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let decide = CountFrames {
        inner: IndustrialDecide::new("bench", model, &IndustrialSettings::default(), None)
            .map_err(setup)?,
        decided: decided.clone(),
    };
    let metrics = Metrics::new();
    let (alerts, _unused) = crossbeam_channel::bounded(1);
    let started = Instant::now();
    let pipeline = Pipeline::spawn(
        "bench",
        RepeatFrame {
            frame,
            until: started + Duration::from_secs_f64(seconds),
            seq: 0,
        },
        prepare,
        detect,
        decide,
        alerts,
        &metrics,
        PipelineSettings::default(),
    )
    .map_err(setup)?;
    pipeline.wait().map_err(setup)?;
    let elapsed = started.elapsed().as_secs_f64();
    let decided = decided.load(std::sync::atomic::Ordering::Relaxed);
    Ok(PipelineRate {
        fps: decided as f64 / elapsed,
        decided,
        dropped: ["prepare", "detect", "decide"]
            .iter()
            .map(|stage| metrics.frames_dropped("bench", stage).get())
            .sum(),
    })
}

/// The same frame, restamped, as fast as the pipeline takes it, until a deadline.
struct RepeatFrame {
    frame: crate::capture::VideoFrame,
    until: Instant,
    seq: u64,
}

impl crate::capture::Source for RepeatFrame {
    fn start(&mut self) -> Result<(), crate::capture::CaptureError> {
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, crate::capture::CaptureError> {
        if Instant::now() >= self.until {
            return Ok(None);
        }
        let mut frame = self.frame.clone();
        frame.stamp = Stamp {
            pts: Duration::from_millis(self.seq * 33),
            captured_at: std::time::SystemTime::now(),
            seq: self.seq,
        };
        self.seq += 1;
        // A camera hands over at most a frame per millisecond or so; without a pause the
        // source thread would only spin, dropping frames, on one of the two cores.
        std::thread::sleep(Duration::from_millis(1));
        Ok(Some(Sample::Video(frame)))
    }

    fn stop(&mut self) {}

    fn describe(&self) -> String {
        "bench frames".into()
    }
}

/// Counts the frames a decide stage sees and swallows its alerts (nothing reads them here).
struct CountFrames<D> {
    inner: D,
    decided: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<D: Decide> Decide for CountFrames<D> {
    type Input = D::Input;

    fn decide(&mut self, stamp: Stamp, input: Self::Input, _: &mut dyn FnMut(Alert)) {
        self.decided
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.decide(stamp, input, &mut |_| {});
    }

    fn finish(&mut self, _: &mut dyn FnMut(Alert)) {
        self.inner.finish(&mut |_| {});
    }
}

/// The process's peak resident memory (`VmHWM` in `/proc/self/status`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
