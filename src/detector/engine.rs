//! Loading and running models with tract.

use std::path::Path;
use std::sync::Arc;

use tract_core::internal::SimpleState;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::PlainView;

use super::DetectorError;
use super::manifest::{ElementType, Manifest, ModelSpec, TensorSpec, verify_files};

type TypedPlan = TypedSimplePlan;

/// An optimized model, ready to run; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Plan {
    spec: Arc<ModelSpec>,
    plan: Arc<TypedPlan>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("model", &self.spec.name)
            .finish()
    }
}

fn datum_type(dtype: ElementType) -> DatumType {
    match dtype {
        ElementType::F32 => DatumType::F32,
        ElementType::U8 => DatumType::U8,
        ElementType::I8 => DatumType::I8,
    }
}

impl Plan {
    /// Verifies the model's files against the manifest, then loads and optimizes it with the
    /// input shapes fixed: tract plans optimized for a symbolic batch run much slower.
    pub fn load(manifest: &Manifest, name: &str) -> Result<Self, DetectorError> {
        let spec = manifest.model(name)?.clone();
        verify_files(manifest, &spec)?;
        let path = manifest.path_of(spec.onnx_file());
        let typed = load_typed(&spec, &path)?;
        let plan = typed
            .into_runnable()
            .map_err(|err| onnx_error(&spec, &path, err))?;
        Ok(Self {
            spec: Arc::new(spec),
            plan,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// A per-thread runner with its own scratch buffers.
    pub fn session(&self) -> Result<Session, DetectorError> {
        let state = SimpleState::new(&self.plan).map_err(|err| self.run_error(err))?;
        Ok(Session {
            plan: self.clone(),
            state,
        })
    }

    fn run_error(&self, err: impl std::fmt::Display) -> DetectorError {
        DetectorError::Run {
            model: self.spec.name.clone(),
            detail: format!("{err:#}"),
        }
    }
}

fn onnx_error(spec: &ModelSpec, path: &Path, err: impl std::fmt::Debug) -> DetectorError {
    // tract's errors are chains; the alternate Debug form keeps every cause on one line.
    let detail = format!("{err:?}").replace('\n', "; ");
    DetectorError::Onnx {
        model: spec.name.clone(),
        detail,
        path: path.to_path_buf(),
    }
}

/// Loads the ONNX file as the manifest describes it (input facts, selected outputs) and
/// optimizes it, checking every boundary tensor against the manifest.
pub(crate) fn load_typed(spec: &ModelSpec, path: &Path) -> Result<TypedModel, DetectorError> {
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| onnx_error(spec, path, e))?;
    let in_count = model
        .input_outlets()
        .map_err(|e| onnx_error(spec, path, e))?
        .len();
    if in_count != spec.inputs.len() {
        return Err(DetectorError::Tensor {
            model: spec.name.clone(),
            tensor: "inputs".into(),
            expected: format!("{} inputs", spec.inputs.len()),
            got: format!("{in_count}"),
        });
    }
    for (ix, input) in spec.inputs.iter().enumerate() {
        let fact = InferenceFact::dt_shape(datum_type(input.dtype), input.shape.iter().copied());
        model
            .set_input_fact(ix, fact)
            .map_err(|e| onnx_error(spec, path, e))?;
    }
    let mut outlets = Vec::with_capacity(spec.outputs.len());
    for output in &spec.outputs {
        let outlet =
            model
                .find_outlet_label(&output.name)
                .ok_or_else(|| DetectorError::Tensor {
                    model: spec.name.clone(),
                    tensor: output.name.clone(),
                    expected: "a tensor of that name in the graph".into(),
                    got: "none".into(),
                })?;
        outlets.push(outlet);
    }
    model
        .select_output_outlets(&outlets)
        .map_err(|e| onnx_error(spec, path, e))?;
    let typed = model
        .into_optimized()
        .map_err(|e| onnx_error(spec, path, e))?;
    for (ix, output) in spec.outputs.iter().enumerate() {
        let outlet = typed
            .output_outlets()
            .map_err(|e| onnx_error(spec, path, e))?[ix];
        let fact = typed
            .outlet_fact(outlet)
            .map_err(|e| onnx_error(spec, path, e))?;
        let shape: Option<Vec<usize>> = fact.shape.as_concrete().map(|s| s.to_vec());
        // Quantized graphs may carry their output as a quantized u8/i8 datum type; what
        // matters at the boundary is the storage type.
        let storage = fact.datum_type.unquantized();
        if shape.as_deref() != Some(&output.shape[..]) || storage != datum_type(output.dtype) {
            return Err(DetectorError::Tensor {
                model: spec.name.clone(),
                tensor: output.label().into(),
                expected: format!("{:?} {:?}", output.dtype, output.shape),
                got: format!("{:?} {:?}", fact.datum_type, fact.shape),
            });
        }
    }
    Ok(typed)
}

/// Runs one model on one thread, reusing its state between runs.
pub struct Session {
    plan: Plan,
    state: TypedSimpleState,
}

impl Session {
    pub fn spec(&self) -> &ModelSpec {
        self.plan.spec()
    }

    /// Runs the model on u8 or f32 inputs given in the manifest's order and shapes.
    pub fn run(&mut self, inputs: Vec<Tensor>) -> Result<TVec<TValue>, DetectorError> {
        let spec = self.plan.spec.clone();
        if inputs.len() != spec.inputs.len() {
            return Err(DetectorError::Tensor {
                model: spec.name.clone(),
                tensor: "inputs".into(),
                expected: format!("{} tensors", spec.inputs.len()),
                got: format!("{}", inputs.len()),
            });
        }
        for (tensor, input) in inputs.iter().zip(&spec.inputs) {
            check_input(&spec, input, tensor)?;
        }
        let values = inputs.into_iter().map(TValue::from).collect();
        self.state
            .run(values)
            .map_err(|err| self.plan.run_error(err))
    }

    /// Copies output `ix` into `out`, which must have exactly its number of elements.
    pub fn read_u8(
        &self,
        outputs: &[TValue],
        ix: usize,
        out: &mut [u8],
    ) -> Result<(), DetectorError> {
        self.read(outputs, ix, DatumType::U8, |view| {
            let data = view.as_slice::<u8>()?;
            copy_exact(data, out)
        })
    }

    pub fn read_f32(
        &self,
        outputs: &[TValue],
        ix: usize,
        out: &mut [f32],
    ) -> Result<(), DetectorError> {
        self.read(outputs, ix, DatumType::F32, |view| {
            let data = view.as_slice::<f32>()?;
            copy_exact(data, out)
        })
    }

    fn read(
        &self,
        outputs: &[TValue],
        ix: usize,
        dt: DatumType,
        copy: impl FnOnce(&PlainView<'_>) -> TractResult<()>,
    ) -> Result<(), DetectorError> {
        let value = outputs
            .get(ix)
            .ok_or_else(|| self.plan.run_error(format!("no output {ix}")))?;
        // A quantized u8 tensor is stored as u8: reinterpret rather than dequantize.
        let tensor = if value.datum_type().unquantized() == dt && value.datum_type() != dt {
            let mut t = value.clone().into_tensor();
            unsafe { t.set_datum_type(dt) };
            std::borrow::Cow::Owned(t)
        } else {
            std::borrow::Cow::Borrowed(&**value)
        };
        let view = tensor
            .try_as_plain_ram()
            .map_err(|err| self.plan.run_error(err))?;
        copy(&view).map_err(|err| self.plan.run_error(err))
    }
}

fn copy_exact<T: Copy>(data: &[T], out: &mut [T]) -> TractResult<()> {
    if data.len() != out.len() {
        return Err(TractError::msg(format!(
            "output has {} elements, buffer {}",
            data.len(),
            out.len()
        )));
    }
    out.copy_from_slice(data);
    Ok(())
}

fn check_input(spec: &ModelSpec, input: &TensorSpec, tensor: &Tensor) -> Result<(), DetectorError> {
    if tensor.shape() != &input.shape[..] || tensor.datum_type() != datum_type(input.dtype) {
        return Err(DetectorError::Tensor {
            model: spec.name.clone(),
            tensor: input.label().into(),
            expected: format!("{:?} {:?}", input.dtype, input.shape),
            got: format!("{:?} {:?}", tensor.datum_type(), tensor.shape()),
        });
    }
    Ok(())
}
