//! int8-probe: what does tract really run for an ONNX file?
//!
//! Loads a model with the input shapes taken from `.npy` files, optimizes it the way vigil does
//! (`into_optimized()`), lists the ops that survive with the datum types flowing in and out (so an
//! int8 matmul kernel is told apart from an f32 one and from the i32 glue around it), times the
//! plan on a reused state (warm-up first, median of N), optionally profiles time per op kind, and
//! compares every output with a reference `.npy` written by onnxruntime.
//!
//! One JSON object is printed on stdout so that scripts can collect results; `--ops` adds a
//! human-readable op listing on stderr.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};

#[derive(Parser, Debug)]
#[command(about = "List, time and check what tract makes of an (int8) ONNX model")]
struct Args {
    /// The ONNX file.
    model: PathBuf,
    /// One .npy per model input, in the model's input order. Shapes and types become the
    /// input facts, so the plan is optimized for these exact shapes.
    #[arg(long = "input", short = 'i', required = true)]
    inputs: Vec<PathBuf>,
    /// Reference .npy per model output (e.g. onnxruntime fp32), in output order.
    #[arg(long = "expect", short = 'e')]
    expects: Vec<PathBuf>,
    /// Timed runs (median reported).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed runs first: the first run allocates and packs, it is not representative.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Declare axis 0 of every input as a symbol `N` while optimizing, the way a runtime that
    /// accepts any batch would, then run with the concrete shapes.
    #[arg(long)]
    symbolic_batch: bool,
    /// tract matmul threads (1 = tract's default single-threaded executor).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Which graph to list with --ops: the decluttered one shows the folding decisions
    /// (lookup tables, dropped Q/DQ pairs), the optimized one shows the kernels.
    #[arg(long, value_enum, default_value_t = Stage::Optimized)]
    stage: Stage,
    /// Print the op listing on stderr.
    #[arg(long)]
    ops: bool,
    /// Accumulate wall time per op kind over the timed runs (adds a little overhead per node).
    #[arg(long)]
    profile: bool,
    /// Write each output as `<dir>/out<ix>.npy` (f32).
    #[arg(long)]
    save_outputs: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Stage {
    Decluttered,
    Optimized,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let inputs: Vec<Tensor> = args
        .inputs
        .iter()
        .map(|p| npy::read(p).with_context(|| format!("reading input {}", p.display())))
        .collect::<Result<_>>()?;

    let t0 = Instant::now();
    let mut model = tract_onnx::onnx()
        .model_for_path(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let batch = model.sym("N");
    for (ix, t) in inputs.iter().enumerate() {
        let mut shape: TVec<TDim> = t.shape().iter().map(|d| d.to_dim()).collect();
        if args.symbolic_batch && !shape.is_empty() {
            shape[0] = batch.clone().into();
        }
        model.set_input_fact(ix, InferenceFact::dt_shape(t.datum_type(), shape))?;
    }
    let typed = model.into_typed().context("typing the model")?;
    let decluttered = typed.into_decluttered().context("decluttering")?;
    let listed_decluttered = (args.stage == Stage::Decluttered).then(|| decluttered.clone());
    let mut optimized = decluttered.clone();
    optimized.optimize().context("optimizing")?;
    let prepare_ms = ms(t0.elapsed());

    let listed = listed_decluttered.as_ref().unwrap_or(&optimized);
    let op_rows = list_ops(listed)?;
    if args.ops {
        print_ops(&op_rows);
    }

    let options = RunOptions { executor: executor(args.threads)?, ..Default::default() };
    let plan = SimplePlan::new_with_options(optimized, &options)?;
    let mut state = SimpleState::new(&plan)?;
    let tvalues = || -> TVec<TValue> { inputs.iter().map(|t| t.clone().into_tvalue()).collect() };

    let mut outputs = TVec::new();
    for _ in 0..args.warmup.max(1) {
        outputs = state.run(tvalues())?;
    }

    let mut per_node = vec![Duration::ZERO; plan.model().nodes().len()];
    let mut samples = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let inputs = tvalues();
        let start = Instant::now();
        outputs = if args.profile {
            state.run_plan_with_eval(inputs, |ctx, op_state, node, node_inputs| {
                let started = Instant::now();
                let result = tract_onnx::tract_core::plan::eval(ctx, op_state, node, node_inputs);
                per_node[node.id] += started.elapsed();
                result
            })?
        } else {
            state.run(inputs)?
        };
        samples.push(ms(start.elapsed()));
    }
    samples.sort_by(f64::total_cmp);

    let errors = compare(&outputs, &args.expects)?;
    if let Some(dir) = &args.save_outputs {
        fs::create_dir_all(dir)?;
        for (ix, o) in outputs.iter().enumerate() {
            let as_f32 = o.cast_to::<f32>()?;
            npy::write_f32(&dir.join(format!("out{ix}.npy")), &as_f32)?;
        }
    }

    let report = json!({
        "model": args.model.display().to_string(),
        "symbolic_batch": args.symbolic_batch,
        "threads": args.threads,
        "prepare_ms": prepare_ms,
        "runs": args.runs,
        "median_ms": percentile(&samples, 0.5),
        "p10_ms": percentile(&samples, 0.1),
        "p90_ms": percentile(&samples, 0.9),
        "op_kinds": op_histogram(&op_rows),
        "matmul_kernels": kernels(&op_rows),
        "errors": errors,
        "profile_ms_per_run": args.profile.then(|| profile(plan.model(), &per_node, args.runs)),
        "stage": format!("{:?}", args.stage),
        "ops": op_rows.iter().map(OpRow::to_json).collect::<Vec<_>>(),
    });
    println!("{report}");
    Ok(())
}

/// tract runs matmuls on one thread unless a rayon pool is handed to the plan.
fn executor(threads: usize) -> Result<Option<tract_linalg::multithread::Executor>> {
    ensure!(threads >= 1, "--threads must be at least 1");
    Ok((threads > 1).then(|| tract_linalg::multithread::Executor::multithread(threads)))
}

struct OpRow {
    name: String,
    op: String,
    info: Vec<String>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl OpRow {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "op": self.op, "info": self.info,
               "in": self.inputs, "out": self.outputs})
    }
}

/// Every non-constant node in evaluation order, with the datum types on its edges.
fn list_ops(model: &TypedModel) -> Result<Vec<OpRow>> {
    let mut rows = vec![];
    for &id in &model.eval_order()? {
        let node = model.node(id);
        // Constants and sources carry no compute; they only clutter the listing.
        if node.op_is::<tract_onnx::tract_core::ops::konst::Const>()
            || node.op_is::<tract_onnx::tract_core::ops::source::TypedSource>()
        {
            continue;
        }
        // e.g. `I8[1,197,192]`: the datum type is what tells int8 kernels from f32 and i32 glue.
        let fact_dt = |f: &TypedFact| format!("{:?}[{:?}]", f.datum_type, f.shape);
        rows.push(OpRow {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            info: node.op.info().unwrap_or_default(),
            inputs: model
                .node_input_facts(id)?
                .iter()
                .filter(|f| f.konst.is_none())
                .map(|f| fact_dt(f))
                .collect(),
            outputs: node.outputs.iter().map(|o| fact_dt(&o.fact)).collect(),
        });
    }
    Ok(rows)
}

fn print_ops(rows: &[OpRow]) {
    let mut err = std::io::stderr().lock();
    for r in rows {
        let _ = writeln!(
            err,
            "{:<44} {:<24} {} -> {}",
            truncate(&r.name, 44),
            r.op,
            r.inputs.join(", "),
            r.outputs.join(", ")
        );
        for line in &r.info {
            let _ = writeln!(err, "{:>46}{}", "", truncate(line, 160));
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

fn op_histogram(rows: &[OpRow]) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for r in rows {
        *h.entry(r.op.clone()).or_insert(0) += 1;
    }
    h
}

/// The matmul kernel names tract picked, read from the ops' info lines (e.g.
/// `avx512amx_mmm_i32_16x16`), counted: this is the one-glance answer to "is it int8?".
fn kernels(rows: &[OpRow]) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for r in rows {
        for line in &r.info {
            for word in line.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if word.contains("_mmm_") || word.contains("_mmv_") {
                    *h.entry(word.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    h
}

/// Milliseconds per run spent in each op kind, largest first.
fn profile(model: &TypedModel, per_node: &[Duration], runs: usize) -> Vec<(String, f64)> {
    let mut by_kind: BTreeMap<String, Duration> = BTreeMap::new();
    for node in model.nodes() {
        *by_kind.entry(node.op.name().to_string()).or_default() += per_node[node.id];
    }
    let mut v: Vec<_> = by_kind
        .into_iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(k, d)| (k, ms(d) / runs.max(1) as f64))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// Max and mean absolute error of each output against its reference, in f32.
fn compare(outputs: &[TValue], expects: &[PathBuf]) -> Result<Vec<Value>> {
    let mut errors = vec![];
    for (ix, path) in expects.iter().enumerate() {
        let Some(got) = outputs.get(ix) else {
            bail!("{} references given but the model has {} outputs", expects.len(), outputs.len())
        };
        let want = npy::read(path)?.cast_to::<f32>()?.into_owned();
        let got = got.cast_to::<f32>()?;
        ensure!(
            got.shape() == want.shape(),
            "output {ix}: shape {:?} but reference {} has {:?}",
            got.shape(),
            path.display(),
            want.shape()
        );
        let (g, w) = (got.try_as_plain_ram()?.as_slice::<f32>()?, want.try_as_plain_ram()?.as_slice::<f32>()?);
        let (mut max, mut sum, mut max_ref) = (0f32, 0f64, 0f32);
        for (a, b) in g.iter().zip(w) {
            let d = (a - b).abs();
            // NaN must not hide behind max(): report it as infinite error.
            let d = if d.is_nan() { f32::INFINITY } else { d };
            max = max.max(d);
            sum += d as f64;
            max_ref = max_ref.max(b.abs());
        }
        errors.push(json!({
            "output": ix,
            "max_abs": max,
            "mean_abs": sum / g.len().max(1) as f64,
            "ref_max_abs": max_ref,
        }));
    }
    Ok(errors)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Just enough of the .npy format (v1/v2, little-endian, C order) for test tensors.
mod npy {
    use super::*;

    pub fn read(path: &Path) -> Result<Tensor> {
        let bytes = fs::read(path)?;
        ensure!(bytes.starts_with(b"\x93NUMPY"), "not an .npy file");
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 => (u32::from_le_bytes(bytes[8..12].try_into()?) as usize, 12),
            v => bail!("unsupported .npy version {v}"),
        };
        let header = std::str::from_utf8(&bytes[start..start + header_len])?;
        ensure!(!header.contains("'fortran_order': True"), "Fortran-ordered arrays unsupported");
        let descr = field(header, "descr")?.trim_matches(|c| c == '\'' || c == ' ');
        let shape: Vec<usize> = field(header, "shape")?
            .trim_matches(|c| c == '(' || c == ')' || c == ' ')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().context("shape"))
            .collect::<Result<_>>()?;
        let data = &bytes[start + header_len..];
        let dt = match descr {
            "<f4" => f32::datum_type(),
            "|i1" => i8::datum_type(),
            "|u1" => u8::datum_type(),
            "<i4" => i32::datum_type(),
            "<i8" => i64::datum_type(),
            other => bail!("unsupported dtype {other}"),
        };
        let len = shape.iter().product::<usize>() * dt.size_of();
        ensure!(data.len() >= len, "truncated .npy data");
        // Safety: the length was checked and every supported type accepts any bit pattern.
        Ok(unsafe { Tensor::from_raw_dt(dt, &shape, &data[..len])? })
    }

    /// The text between `'key':` and the next top-level comma of the header dict.
    fn field<'h>(header: &'h str, key: &str) -> Result<&'h str> {
        let pat = format!("'{key}':");
        let at = header.find(&pat).with_context(|| format!("no {key} in .npy header"))?;
        let rest = header[at + pat.len()..].trim_start();
        let end = if rest.starts_with('(') {
            rest.find(')').map(|i| i + 1)
        } else {
            rest.find(',')
        }
        .context("malformed .npy header")?;
        Ok(&rest[..end])
    }

    pub fn write_f32(path: &Path, t: &Tensor) -> Result<()> {
        let shape = t.shape().iter().map(|d| format!("{d},")).collect::<String>();
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
        // Pad so that magic + version + length + header + newline is a multiple of 64.
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + t.len() * 4);
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in t.try_as_plain_ram()?.as_slice::<f32>()? {
            out.extend_from_slice(&v.to_le_bytes());
        }
        fs::write(path, out)?;
        Ok(())
    }
}
