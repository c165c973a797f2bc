//! What `vigil info` prints about a model: its boundary tensors and, after tract's
//! optimization, which operators run on integer kernels and which in float.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use tract_onnx::prelude::*;

use super::DetectorError;
use super::engine::load_typed;
use super::manifest::{Manifest, ModelSpec, verify_files};

/// Where an optimized operator spends its arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arithmetic {
    /// A matrix-multiply or convolution kernel on 8-bit operands (i32 accumulation).
    Int8Kernel,
    /// A matrix-multiply or convolution kernel on float operands.
    FloatKernel,
    /// Element-wise integer work: quantize, requantize, casts, lookup tables.
    IntegerGlue,
    /// Everything else in float (activations, pooling, softmax, normalisation).
    Float,
    /// Shape and layout changes that do no arithmetic.
    Layout,
}

#[derive(Debug, Clone)]
pub struct OpReport {
    pub node: String,
    pub op: String,
    pub arithmetic: Arithmetic,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct ModelReport {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub ops: Vec<OpReport>,
}

/// Inspects a model from the manifest (verified like the runtime does) or any ONNX file.
pub fn inspect(target: &str, manifest: Option<&Manifest>) -> Result<ModelReport, DetectorError> {
    let typed = match manifest.and_then(|m| m.model(target).ok().map(|spec| (m, spec))) {
        Some((manifest, spec)) => {
            verify_files(manifest, spec)?;
            load_typed(spec, &manifest.path_of(spec.onnx_file()))?
        }
        None => load_file(Path::new(target))?,
    };
    report(&typed).map_err(|err| DetectorError::Onnx {
        model: target.into(),
        detail: format!("{err:#}"),
        path: target.into(),
    })
}

fn load_file(path: &Path) -> Result<TypedModel, DetectorError> {
    let name = path.display().to_string();
    let wrap = |err: TractError| DetectorError::Onnx {
        model: name.clone(),
        detail: format!("{err:?}").replace('\n', "; "),
        path: path.to_path_buf(),
    };
    if !path.exists() {
        return Err(DetectorError::Io {
            detail: "no such model or file".into(),
            path: path.into(),
        });
    }
    let model = tract_onnx::onnx().model_for_path(path).map_err(wrap)?;
    model.into_optimized().map_err(wrap)
}

fn is_8bit(dt: DatumType) -> bool {
    matches!(dt.unquantized(), DatumType::U8 | DatumType::I8)
}

fn classify(model: &TypedModel, node: &TypedNode) -> (Arithmetic, String) {
    let op = node.op.name();
    let info = node.op.info().unwrap_or_default().join(", ");
    let input_types: Vec<DatumType> = node
        .inputs
        .iter()
        .filter_map(|i| model.outlet_fact(*i).ok().map(|f| f.datum_type))
        .collect();
    let output_type = node.outputs.first().map(|o| o.fact.datum_type);
    let types = format!(
        "{} -> {}",
        input_types
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join(","),
        output_type.map(|d| format!("{d:?}")).unwrap_or_default()
    );
    let detail = if info.is_empty() {
        types
    } else {
        format!("{types}; {info}")
    };
    let lower = op.to_lowercase();
    // Packing reorders an operand for a kernel and reshaping moves no data: neither is
    // arithmetic, whatever the element type.
    const LAYOUT: &[&str] = &[
        "pack",
        "intoshape",
        "im2col",
        "reshape",
        "axisop",
        "slice",
        "concat",
        "const",
        "source",
        "move",
        "squeeze",
        "transpose",
    ];
    const KERNELS: &[&str] = &["matmul", "mmm", "conv", "einsum", "gemm"];
    let layout = LAYOUT.iter().any(|k| lower.contains(k));
    let heavy = !layout && KERNELS.iter().any(|k| lower.contains(k));
    let integer_kernel =
        info.contains("i32") || info.contains("i8") || input_types.iter().any(|d| is_8bit(*d));
    let arithmetic = if heavy && integer_kernel {
        Arithmetic::Int8Kernel
    } else if heavy {
        Arithmetic::FloatKernel
    } else if layout {
        Arithmetic::Layout
    } else if input_types
        .iter()
        .chain(output_type.iter())
        .any(|d| d.is_integer() || d.is_quantized())
        || lower.contains("lookup")
        || lower.contains("cast")
        || lower.contains("quant")
    {
        Arithmetic::IntegerGlue
    } else {
        Arithmetic::Float
    };
    (arithmetic, detail)
}

fn report(model: &TypedModel) -> TractResult<ModelReport> {
    let describe = |outlet: OutletId| -> TractResult<String> {
        let fact = model.outlet_fact(outlet)?;
        let name = model
            .outlet_label(outlet)
            .unwrap_or(&model.node(outlet.node).name);
        Ok(format!("{name}: {:?} {:?}", fact.datum_type, fact.shape))
    };
    let inputs = model
        .input_outlets()?
        .iter()
        .map(|o| describe(*o))
        .collect::<TractResult<_>>()?;
    let outputs = model
        .output_outlets()?
        .iter()
        .map(|o| describe(*o))
        .collect::<TractResult<_>>()?;
    let mut ops = Vec::new();
    for &id in &model.eval_order()? {
        let node = model.node(id);
        let (arithmetic, detail) = classify(model, node);
        ops.push(OpReport {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            arithmetic,
            detail,
        });
    }
    Ok(ModelReport {
        inputs,
        outputs,
        ops,
    })
}

impl ModelReport {
    /// Human-readable summary: boundary tensors, counts per kind of arithmetic, then each
    /// compute-heavy operator with its kernel.
    pub fn render(&self, spec: Option<&ModelSpec>) -> String {
        let mut out = String::new();
        if let Some(spec) = spec {
            let _ = writeln!(
                out,
                "model {} ({}): {}",
                spec.name, spec.family, spec.description
            );
        }
        let _ = writeln!(out, "inputs:");
        for i in &self.inputs {
            let _ = writeln!(out, "  {i}");
        }
        let _ = writeln!(out, "outputs:");
        for o in &self.outputs {
            let _ = writeln!(out, "  {o}");
        }
        let mut counts: BTreeMap<Arithmetic, BTreeMap<&str, usize>> = BTreeMap::new();
        for op in &self.ops {
            *counts
                .entry(op.arithmetic)
                .or_default()
                .entry(op.op.as_str())
                .or_default() += 1;
        }
        let _ = writeln!(out, "optimized operators by arithmetic:");
        for (arithmetic, ops) in &counts {
            let list = ops
                .iter()
                .map(|(op, n)| format!("{op}×{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(out, "  {arithmetic:?}: {list}");
        }
        let int8 = self
            .ops
            .iter()
            .filter(|o| o.arithmetic == Arithmetic::Int8Kernel)
            .count();
        let float = self
            .ops
            .iter()
            .filter(|o| o.arithmetic == Arithmetic::FloatKernel)
            .count();
        let _ = writeln!(
            out,
            "matrix/convolution kernels: {int8} on int8, {float} in float{}",
            if int8 == 0 && float > 0 {
                " (a QDQ graph runs in float in tract: see models/README.md)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "kernels:");
        for op in self.ops.iter().filter(|o| {
            matches!(
                o.arithmetic,
                Arithmetic::Int8Kernel | Arithmetic::FloatKernel
            )
        }) {
            let _ = writeln!(
                out,
                "  {:?} {} [{}] {}",
                op.arithmetic, op.node, op.op, op.detail
            );
        }
        out
    }
}
