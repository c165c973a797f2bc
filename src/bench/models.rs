//! `vigil bench --suite models`: every network vigil ships, in the form vigil ships it, against
//! onnxruntime's best form of the same network, at one and two threads, in one run.
//!
//! onnxruntime's forms (`scripts/bench/models_peer.py`): the network's fp32 graph, and its own
//! int8 of that graph (quantize_static: QDQ, per-channel weights, calibrated on the inputs); for
//! YAMNet, whose fp32 graph is not public, the QDQ file as published. The ratio is vigil's time
//! over the fastest of them at the same thread count: below 1, vigil is faster.
//!
//! vigil's side loads each file exactly as the runtime does (input shapes fixed, tract's
//! `into_optimized`), and runs two threads through tract's multithreaded matrix products, the
//! only parallelism tract 0.23 has. The inputs are the same for both: YAMNet's real patches
//! from its test fixture, pseudo-random values at the input's scale elsewhere (dense kernels
//! take the same time whatever the values).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tract_onnx::prelude::*;

use super::{BenchError, median_ms, peer_json, repo, setup, tempfile_dir};
use crate::detector::Manifest;
use crate::io::npy::{DType, read_npy, read_npy_header, write_npy};
use crate::rng::SplitMix64;

/// Thread counts every network is measured at.
pub const THREADS: [usize; 2] = [1, 2];

/// What fills an input.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// YAMNet's quantized log-mel patches from the test fixture.
    YamnetPatches,
    /// Normal values (normalised images, features).
    Normal,
    /// Uniform in [0, 1) (normalised reflectance).
    Unit,
    /// Zeros (an additive attention bias).
    Zero,
}

struct Input {
    name: &'static str,
    shape: Vec<usize>,
    fill: Fill,
}

/// One shipped network and its fp32 graph.
struct Network {
    name: &'static str,
    /// Its folder under `--references`, and its name in `tests/references/networks_parity.rs`.
    slug: &'static str,
    /// The form vigil runs, in words.
    form: &'static str,
    shipped: PathBuf,
    /// The fp32 graph of the same network, for onnxruntime's fp32 and int8 forms.
    fp32: Option<PathBuf>,
    /// onnxruntime also runs the shipped file as is (a third party's published int8).
    published: bool,
    inputs: Vec<Input>,
}

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelRow {
    pub network: String,
    pub form: String,
    /// Median ms per run at each of [`THREADS`].
    pub vigil_ms: Vec<f64>,
    /// vigil on the network's fp32 graph, one thread, where the shipped form is another
    /// (an int8 form must beat it, or the card says why it ships).
    pub vigil_fp32_ms: Option<f64>,
    /// onnxruntime's median ms per form ("fp32", "int8", "published") at each of [`THREADS`].
    pub peer_ms: BTreeMap<String, Vec<f64>>,
    /// Forms onnxruntime could not build, and why.
    pub peer_errors: BTreeMap<String, String>,
    /// Largest |vigil − onnxruntime| over each output of the shipped file, on one input.
    pub max_difference: Vec<f64>,
    pub peer_version: String,
}

impl ModelRow {
    /// onnxruntime's fastest form at thread-count index `t`, and its name.
    pub fn best_peer(&self, t: usize) -> Option<(&str, f64)> {
        self.peer_ms
            .iter()
            .filter_map(|(form, ms)| ms.get(t).map(|&ms| (form.as_str(), ms)))
            .filter(|(_, ms)| ms.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// vigil over the fastest peer at thread-count index `t`.
    pub fn ratio(&self, t: usize) -> Option<f64> {
        let (_, peer) = self.best_peer(t)?;
        Some(self.vigil_ms.get(t)? / peer)
    }
}

fn model_file(manifest: &Manifest, name: &str, index: usize) -> Result<PathBuf, BenchError> {
    let spec = manifest.model(name).map_err(setup)?;
    let file = spec
        .files
        .get(index)
        .ok_or_else(|| setup(format!("model {name} has no file {index}")))?;
    Ok(manifest.path_of(file))
}

fn image(name: &'static str) -> Vec<Input> {
    vec![Input {
        name,
        shape: vec![1, 3, 224, 224],
        fill: Fill::Normal,
    }]
}

/// The shipped networks, in the order of the data they see.
fn networks(manifest: &Manifest) -> Result<Vec<Network>, BenchError> {
    let file = |name, index| model_file(manifest, name, index);
    Ok(vec![
        Network {
            name: "YAMNet (audio events)",
            slug: "yamnet",
            form: "QDQ int8 as published",
            shipped: file("yamnet", 0)?,
            fp32: None,
            published: true,
            inputs: vec![Input {
                name: "audio",
                shape: vec![1, 1, 96, 64],
                fill: Fill::YamnetPatches,
            }],
        },
        Network {
            name: "MobileNetV2 features (MAVD-edge RGB)",
            slug: "mobilenet-v2-features",
            form: "fp32",
            shipped: file("mavd-edge", 1)?,
            fp32: Some(file("mavd-edge", 1)?),
            published: false,
            inputs: image("image"),
        },
        Network {
            name: "MAVD-edge window head (8 snippets)",
            slug: "mavd-edge-window",
            form: "fp32",
            shipped: file("mavd-edge", 0)?,
            fp32: Some(file("mavd-edge", 0)?),
            published: false,
            inputs: vec![
                Input {
                    name: "video",
                    shape: vec![1, 8, 1280],
                    fill: Fill::Normal,
                },
                Input {
                    name: "audio",
                    shape: vec![1, 8, 1024],
                    fill: Fill::Normal,
                },
                Input {
                    name: "flow",
                    shape: vec![1, 8, 152],
                    fill: Fill::Normal,
                },
                Input {
                    name: "key_bias",
                    shape: vec![8],
                    fill: Fill::Zero,
                },
                Input {
                    name: "local_kernel",
                    shape: vec![8, 8],
                    fill: Fill::Unit,
                },
            ],
        },
        Network {
            name: "PatchCore backbone (MobileNetV2 taps)",
            slug: "patchcore-backbone",
            form: "fp32",
            shipped: file("patchcore-brick", 0)?,
            fp32: Some(file("patchcore-brick", 0)?),
            published: false,
            inputs: image("image"),
        },
        Network {
            name: "ISSTAD-edge (224² frame)",
            slug: "isstad-edge-brick",
            form: "int8 (vigil's)",
            shipped: file("isstad-edge-brick", 0)?,
            fp32: Some(file("isstad-edge-brick-fp32", 0)?),
            published: false,
            inputs: image("image"),
        },
        Network {
            name: "FERS-edge-200 (64×64 tile)",
            slug: "fers-edge-200",
            form: "fp32",
            shipped: file("fers-edge-200-fp32", 0)?,
            fp32: Some(file("fers-edge-200-fp32", 0)?),
            published: false,
            inputs: vec![Input {
                name: "cube",
                shape: vec![1, 64, 64, 200],
                fill: Fill::Unit,
            }],
        },
    ])
}

/// `count` values of one input, as tract tensors and as a `[count, *shape]` batch file.
fn make_batch(
    input: &Input,
    count: usize,
    rng: &mut SplitMix64,
    dir: &Path,
) -> Result<(Vec<Tensor>, PathBuf), BenchError> {
    let per: usize = input.shape.iter().product();
    let path = dir.join(format!("{}.npy", input.name));
    let mut batch_shape = vec![count];
    batch_shape.extend(&input.shape);
    let tensors = match input.fill {
        Fill::YamnetPatches => {
            let patches =
                read_npy::<u8>(repo().join("tests/fixtures/yamnet/patches.npy")).map_err(setup)?;
            let available = patches.data.len() / per;
            if available == 0 {
                return Err(setup("the YAMNet patch fixture holds no patch"));
            }
            let mut values = Vec::with_capacity(count * per);
            for i in 0..count {
                let k = i % available;
                values.extend_from_slice(&patches.data[k * per..(k + 1) * per]);
            }
            write_npy(&path, &batch_shape, &values).map_err(setup)?;
            values
                .chunks(per)
                .map(|v| Tensor::from_shape(&input.shape, v))
                .collect::<TractResult<Vec<_>>>()
                .map_err(setup)?
        }
        fill => {
            let values: Vec<f32> = (0..count * per)
                .map(|_| match fill {
                    Fill::Normal => rng.normal() as f32,
                    Fill::Unit => rng.uniform() as f32,
                    _ => 0.0,
                })
                .collect();
            write_npy(&path, &batch_shape, &values).map_err(setup)?;
            values
                .chunks(per)
                .map(|v| Tensor::from_shape(&input.shape, v))
                .collect::<TractResult<Vec<_>>>()
                .map_err(setup)?
        }
    };
    Ok((tensors, path))
}

/// The plan vigil builds for `path` with the shapes and types of `named`'s batches, and the
/// batches in the graph's input order (which the files need not share with the table).
fn plan(
    path: &Path,
    mut named: Vec<(&str, Vec<Tensor>)>,
) -> Result<(Arc<TypedSimplePlan>, Vec<Vec<Tensor>>), BenchError> {
    let context = |err: TractError| setup(format!("{}: {err:?}", path.display()));
    let mut model = tract_onnx::onnx().model_for_path(path).map_err(context)?;
    let outlets = model.input_outlets().map_err(context)?.to_vec();
    let mut inputs = Vec::with_capacity(outlets.len());
    for (ix, outlet) in outlets.iter().enumerate() {
        let name = &model.node(outlet.node).name;
        let at = named.iter().position(|(n, _)| n == name).ok_or_else(|| {
            setup(format!(
                "{}: input {name} has no batch in the bench",
                path.display()
            ))
        })?;
        let batch = named.swap_remove(at).1;
        let first = &batch[0];
        let fact = InferenceFact::dt_shape(first.datum_type(), first.shape().iter().copied());
        model.set_input_fact(ix, fact).map_err(context)?;
        inputs.push(batch);
    }
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(context)?;
    Ok((plan, inputs))
}

/// Runs `plan` on item 0 of the inputs; each output as f32 (quantized outputs dequantized).
fn item0_outputs(
    plan: &Arc<TypedSimplePlan>,
    inputs: &[Vec<Tensor>],
) -> Result<Vec<Tensor>, BenchError> {
    let mut state = TypedSimpleState::new(plan).map_err(setup)?;
    let values = inputs.iter().map(|batch| batch[0].clone().into()).collect();
    let outputs = state.run(values).map_err(setup)?;
    outputs
        .iter()
        .map(|output| {
            let storage = output.datum_type().unquantized();
            output
                .clone()
                .into_tensor()
                .cast_to_dt(storage)
                .and_then(|t| t.cast_to::<f32>().map(|t| t.into_owned()))
                .map_err(setup)
        })
        .collect()
}

/// Runs `plan` on item 0 of the inputs and writes each output, as f32, to `dir/out-<i>.npy`
/// for the peer to compare with onnxruntime's outputs of the same file.
fn write_outputs(
    plan: &Arc<TypedSimplePlan>,
    inputs: &[Vec<Tensor>],
    dir: &Path,
) -> Result<usize, BenchError> {
    let outputs = item0_outputs(plan, inputs)?;
    for (i, output) in outputs.iter().enumerate() {
        write_npy(
            dir.join(format!("out-{i}.npy")),
            output.shape(),
            f32_values(output)?,
        )
        .map_err(setup)?;
    }
    Ok(outputs.len())
}

fn f32_values(tensor: &Tensor) -> Result<&[f32], BenchError> {
    tensor
        .try_as_plain_ram()
        .and_then(|plain| plain.as_slice::<f32>())
        .map_err(setup)
}

/// One network's folder under `--references`: what this build computes on its inputs, beside
/// what onnxruntime computed on the same file, output by output.
#[derive(Debug)]
pub struct ReferenceCheck {
    /// The folder's name (`Network::slug`).
    pub slug: String,
    /// Per output: its shape and the largest absolute difference from onnxruntime's.
    pub outputs: Vec<(Vec<usize>, f64)>,
}

/// Runs the network a `--references` folder describes (its `network.json`: the file and its
/// inputs' names) on item 0 of each input batch, through the same plan the bench times, and
/// compares each output with onnxruntime's `peer-out-<i>.npy`. Another build (aarch64 under
/// qemu) is held to this machine's onnxruntime this way.
pub fn check_references(dir: &Path) -> Result<ReferenceCheck, BenchError> {
    let in_dir = |detail: String| setup(format!("{}: {detail}", dir.display()));
    let slug = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| in_dir("not a folder name".into()))?;
    let text = std::fs::read_to_string(dir.join("network.json"))
        .map_err(|err| in_dir(format!("network.json: {err}")))?;
    let description: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| in_dir(format!("network.json: {err}")))?;
    let model = description["model"]
        .as_str()
        .ok_or_else(|| in_dir("network.json names no model".into()))?;
    let names: Vec<&str> = description["inputs"]
        .as_array()
        .ok_or_else(|| in_dir("network.json names no inputs".into()))?
        .iter()
        .map(|name| {
            name.as_str()
                .ok_or_else(|| in_dir(format!("input name {name}")))
        })
        .collect::<Result<_, _>>()?;
    let mut named = Vec::with_capacity(names.len());
    for name in names {
        named.push((name, vec![first_item(&dir.join(format!("{name}.npy")))?]));
    }
    let (plan, inputs) = plan(Path::new(model), named)?;
    let outputs = item0_outputs(&plan, &inputs)?;
    let mut compared = Vec::with_capacity(outputs.len());
    for (i, ours) in outputs.iter().enumerate() {
        let path = dir.join(format!("peer-out-{i}.npy"));
        let theirs = read_npy::<f32>(&path).map_err(setup)?;
        if ours.shape() != &theirs.shape[..] {
            return Err(in_dir(format!(
                "output {i} is {:?} here and {:?} in onnxruntime's",
                ours.shape(),
                theirs.shape
            )));
        }
        let worst = f32_values(ours)?
            .iter()
            .zip(&theirs.data)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
            .fold(0.0, f64::max);
        compared.push((ours.shape().to_vec(), worst));
    }
    let expected = std::fs::read_dir(dir)
        .map_err(|err| in_dir(err.to_string()))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("peer-out-"))
        .count();
    if expected != compared.len() {
        return Err(in_dir(format!(
            "onnxruntime gave {expected} outputs, this build {}",
            compared.len()
        )));
    }
    Ok(ReferenceCheck {
        slug,
        outputs: compared,
    })
}

/// Item 0 of a `[N, *shape]` batch file `make_batch` wrote, as a tensor of the file's type.
fn first_item(path: &Path) -> Result<Tensor, BenchError> {
    let context = |detail: String| setup(format!("{}: {detail}", path.display()));
    let header = read_npy_header(path).map_err(|err| context(err.to_string()))?;
    let Some((_, shape)) = header.shape.split_first() else {
        return Err(context("a batch file with no batch axis".into()));
    };
    let per: usize = shape.iter().product();
    let tensor = match header.dtype {
        DType::U8 => {
            let batch = read_npy::<u8>(path).map_err(setup)?;
            Tensor::from_shape(shape, batch.data.get(..per).unwrap_or_default())
        }
        DType::F32 => {
            let batch = read_npy::<f32>(path).map_err(setup)?;
            Tensor::from_shape(shape, batch.data.get(..per).unwrap_or_default())
        }
        other => return Err(context(format!("inputs are u8 or f32, not {other}"))),
    };
    tensor.map_err(|err| context(err.to_string()))
}

/// Median ms of `runs` runs of `plan` on the inputs (run i takes item i of each).
fn time_plan(
    plan: &Arc<TypedSimplePlan>,
    inputs: &[Vec<Tensor>],
    runs: usize,
) -> Result<f64, BenchError> {
    let mut state = TypedSimpleState::new(plan).map_err(setup)?;
    let feed = |i: usize| -> TVec<TValue> {
        inputs
            .iter()
            .map(|batch| batch[i % batch.len()].clone().into())
            .collect()
    };
    for i in 0..3 {
        state.run(feed(i)).map_err(setup)?;
    }
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let values = feed(i);
        let start = Instant::now();
        state.run(values).map_err(setup)?;
        times.push(start.elapsed());
    }
    Ok(median_ms(times))
}

/// The table, one row per shipped network (`only`: rows whose name contains it).
/// With `references`, each network's input batches, vigil's and onnxruntime's outputs of the
/// shipped file on item 0 and a `network.json` (the file, its inputs' names) stay in
/// `references/<slug>/`, for `tests/references/networks_parity.rs` to hold another build to.
pub fn models(
    runs: usize,
    only: Option<&str>,
    references: Option<&Path>,
) -> Result<Vec<ModelRow>, BenchError> {
    let manifest = Manifest::shipped().map_err(setup)?;
    let scratch = tempfile_dir()?;
    let mut rows = Vec::new();
    let mut rng = SplitMix64::new(20);
    for network in networks(&manifest)? {
        if only.is_some_and(|only| !network.name.contains(only)) {
            continue;
        }
        let dir = match references {
            Some(references) => {
                let dir = references.join(network.slug);
                std::fs::create_dir_all(&dir)
                    .map_err(|err| setup(format!("{}: {err}", dir.display())))?;
                let description = serde_json::json!({
                    "model": network.shipped,
                    "inputs": network.inputs.iter().map(|input| input.name).collect::<Vec<_>>(),
                });
                std::fs::write(dir.join("network.json"), description.to_string())
                    .map_err(|err| setup(format!("{}: {err}", dir.display())))?;
                dir
            }
            None => scratch.clone(),
        };
        let count = 8;
        let mut named = Vec::new();
        let mut args = Vec::new();
        for input in &network.inputs {
            let (tensors, path) = make_batch(input, count, &mut rng, &dir)?;
            args.push("--input".to_string());
            args.push(format!("{}={}", input.name, path.display()));
            named.push((input.name, tensors));
        }
        let for_fp32 = named.clone();
        let (shipped_plan, inputs) = plan(&network.shipped, named)?;
        let mut vigil_ms = Vec::new();
        for threads in THREADS {
            let ms = if threads == 1 {
                time_plan(&shipped_plan, &inputs, runs)?
            } else {
                let executor = tract_linalg::multithread::Executor::multithread(threads);
                tract_linalg::multithread::multithread_tract_scope(executor, || {
                    time_plan(&shipped_plan, &inputs, runs)
                })?
            };
            vigil_ms.push(ms);
        }
        let vigil_fp32_ms = match &network.fp32 {
            Some(fp32) if *fp32 != network.shipped => {
                let (fp32_plan, fp32_inputs) = plan(fp32, for_fp32)?;
                Some(time_plan(&fp32_plan, &fp32_inputs, runs)?)
            }
            _ => None,
        };
        let outputs = write_outputs(&shipped_plan, &inputs, &dir)?;
        args.push("--shipped".into());
        args.push(network.shipped.display().to_string());
        for i in 0..outputs {
            args.push("--vigil-output".into());
            args.push(dir.join(format!("out-{i}.npy")).display().to_string());
        }
        if references.is_some() {
            args.push("--save-outputs".into());
            args.push(dir.display().to_string());
        }
        if let Some(fp32) = &network.fp32 {
            args.push("--fp32".into());
            args.push(fp32.display().to_string());
        }
        if network.published {
            args.push("--published".into());
            args.push(network.shipped.display().to_string());
        }
        let threads: Vec<String> = THREADS.iter().map(|t| t.to_string()).collect();
        args.extend([
            "--threads".into(),
            threads.join(","),
            "--runs".into(),
            runs.to_string(),
        ]);
        let peer = peer_json(&repo().join("scripts/bench/models_peer.py"), &args)?;
        let mut peer_ms = BTreeMap::new();
        if let Some(forms) = peer["forms"].as_object() {
            for (form, by_threads) in forms {
                let ms = THREADS
                    .iter()
                    .map(|t| by_threads[t.to_string()].as_f64().unwrap_or(f64::NAN))
                    .collect();
                peer_ms.insert(form.clone(), ms);
            }
        }
        let peer_errors = peer["errors"]
            .as_object()
            .map(|errors| {
                errors
                    .iter()
                    .map(|(form, err)| (form.clone(), err.as_str().unwrap_or("?").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let max_difference = peer["max_difference"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(f64::NAN))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(ModelRow {
            network: network.name.into(),
            form: network.form.into(),
            vigil_ms,
            vigil_fp32_ms,
            peer_ms,
            peer_errors,
            max_difference,
            peer_version: peer["version"].as_str().unwrap_or("?").into(),
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(rows)
}

/// The table in Markdown.
pub fn render(rows: &[ModelRow]) -> String {
    let mut out = String::from(
        "| network | vigil's form | vigil 1 thread | vigil 2 threads | vigil fp32 graph, 1 thread \
         | onnxruntime fp32 (1 / 2) | onnxruntime int8 (1 / 2) | onnxruntime as published (1 / 2) \
         | ratio 1 thread | ratio 2 threads |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |v: f64| {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            "–".into()
        }
    };
    for row in rows {
        let form = |name: &str| match row.peer_ms.get(name) {
            Some(v) => v.iter().map(|&x| ms(x)).collect::<Vec<_>>().join(" / "),
            None => row
                .peer_errors
                .get(name)
                .map_or_else(|| "–".into(), |_| "failed".into()),
        };
        let ratio = |t: usize| match (row.ratio(t), row.best_peer(t)) {
            (Some(r), Some((form, _))) => format!("{r:.2} (vs {form})"),
            _ => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.network,
            row.form,
            ms(row.vigil_ms[0]),
            ms(row.vigil_ms[1]),
            row.vigil_fp32_ms.map_or_else(|| "–".into(), ms),
            form("fp32"),
            form("int8"),
            form("published"),
            ratio(0),
            ratio(1),
        ));
    }
    out.push_str("\nLargest difference from onnxruntime on the shipped file, per output:\n");
    for row in rows {
        let values: Vec<String> = row
            .max_difference
            .iter()
            .map(|d| format!("{d:.2e}"))
            .collect();
        out.push_str(&format!("- {}: {}\n", row.network, values.join(", ")));
    }
    for row in rows {
        for (form, err) in &row.peer_errors {
            out.push_str(&format!(
                "\n{}: onnxruntime's {form} form failed: {err}",
                row.network
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ModelRow {
        ModelRow {
            network: "net".into(),
            form: "int8 (vigil's)".into(),
            vigil_ms: vec![10.0, 6.0],
            vigil_fp32_ms: Some(12.0),
            peer_ms: BTreeMap::from([
                ("fp32".to_string(), vec![5.0, 2.0]),
                ("int8".to_string(), vec![4.0, f64::NAN]),
            ]),
            peer_errors: BTreeMap::from([("published".to_string(), "no such file".to_string())]),
            max_difference: vec![1e-6],
            peer_version: "1".into(),
        }
    }

    /// A `--references` folder for the small linear fixture, with this build's outputs in
    /// onnxruntime's place.
    fn linear_references(dir: &Path) -> Vec<Tensor> {
        let model = repo().join("tests/fixtures/onnx/linear_fp32.onnx");
        let input = Input {
            name: "x",
            shape: vec![8, 64],
            fill: Fill::Normal,
        };
        let (batch, _) = make_batch(&input, 2, &mut SplitMix64::new(3), dir).unwrap();
        let (plan, inputs) = plan(&model, vec![("x", batch)]).unwrap();
        let description = serde_json::json!({"model": model, "inputs": ["x"]});
        std::fs::write(dir.join("network.json"), description.to_string()).unwrap();
        let outputs = item0_outputs(&plan, &inputs).unwrap();
        for (i, output) in outputs.iter().enumerate() {
            let path = dir.join(format!("peer-out-{i}.npy"));
            write_npy(path, output.shape(), f32_values(output).unwrap()).unwrap();
        }
        outputs
    }

    #[test]
    fn a_references_folder_is_rerun_and_compared_output_by_output() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("linear");
        std::fs::create_dir(&dir).unwrap();
        let outputs = linear_references(&dir);
        let check = check_references(&dir).unwrap();
        assert_eq!(check.slug, "linear");
        assert_eq!(check.outputs, vec![(outputs[0].shape().to_vec(), 0.0)]);

        // onnxruntime's output moved by 0.25 in one place: that is the difference reported.
        let mut moved = f32_values(&outputs[0]).unwrap().to_vec();
        moved[5] += 0.25;
        write_npy(dir.join("peer-out-0.npy"), outputs[0].shape(), &moved).unwrap();
        let (_, worst) = check_references(&dir).unwrap().outputs[0].clone();
        assert!((worst - 0.25).abs() < 1e-6, "{worst}");

        // The wrong shape, an output onnxruntime gave that this build does not, a missing
        // input file and a description without inputs are each named.
        write_npy(dir.join("peer-out-0.npy"), &[moved.len()], &moved).unwrap();
        let err = check_references(&dir).err().unwrap().to_string();
        assert!(err.contains("output 0 is"), "{err}");
        write_npy(dir.join("peer-out-0.npy"), outputs[0].shape(), &moved).unwrap();
        write_npy(dir.join("peer-out-1.npy"), &[1], &[0.0f32]).unwrap();
        let err = check_references(&dir).err().unwrap().to_string();
        assert!(
            err.contains("onnxruntime gave 2 outputs, this build 1"),
            "{err}"
        );
        std::fs::remove_file(dir.join("peer-out-1.npy")).unwrap();
        std::fs::remove_file(dir.join("x.npy")).unwrap();
        let err = check_references(&dir).err().unwrap().to_string();
        assert!(err.contains("x.npy"), "{err}");
        std::fs::write(dir.join("network.json"), r#"{"model": "m.onnx"}"#).unwrap();
        let err = check_references(&dir).err().unwrap().to_string();
        assert!(err.contains("names no inputs"), "{err}");
    }

    #[test]
    fn the_ratio_is_to_the_fastest_peer_form_at_the_same_threads() {
        let row = row();
        assert_eq!(row.best_peer(0), Some(("int8", 4.0)));
        assert_eq!(row.ratio(0), Some(2.5));
        // int8 at 2 threads did not run: fp32 is the best that did.
        assert_eq!(row.best_peer(1), Some(("fp32", 2.0)));
        assert_eq!(row.ratio(1), Some(3.0));
        assert_eq!(row.best_peer(2), None);
    }

    #[test]
    fn the_table_shows_every_form_and_says_which_failed() {
        let text = render(&[row()]);
        assert!(
            text.contains("| net | int8 (vigil's) | 10.00 | 6.00 | 12.00 | 5.00 / 2.00 | 4.00 / – | failed | 2.50 (vs int8) | 3.00 (vs fp32) |"),
            "{text}"
        );
        assert!(
            text.contains("onnxruntime's published form failed: no such file"),
            "{text}"
        );
    }
}
