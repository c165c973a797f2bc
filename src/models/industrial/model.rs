//! ISSTAD-edge on tract: one normalised `[1, 3, S, S]` image in, the two per-pixel maps the
//! anomaly map is computed from out (P, `probability`, and R, `reconstruction_error`, each
//! `[1, S, S]`).

use std::sync::Arc;

use tract_onnx::prelude::Tensor;

use super::anomaly_map::ImageScore;
use super::{FAMILY, IndustrialError};
use crate::capture::VideoFrame;
use crate::detector::{ElementType, ModelSpec, Plan, Session, TensorSpec};
use crate::pipeline::StageError;
use crate::prepare::resize::Crop;

/// The graph's input and outputs, as `vigil-train isstad export` names them.
pub const INPUT: &str = "image";
pub const PROBABILITY: &str = "probability";
pub const RECONSTRUCTION_ERROR: &str = "reconstruction_error";

/// σ of the anomaly map's Gaussian when a manifest entry does not give `map_sigma`: the paper's.
const DEFAULT_MAP_SIGMA: f32 = 4.0;

/// What the runtime reads from an ISSTAD-edge manifest entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct IsstadSpec {
    pub model: String,
    /// Side S of the square input and of both maps.
    pub side: usize,
    /// σ of the anomaly map's blur.
    pub map_sigma: f32,
    /// Image-score threshold fitted by `eval` (the entry's `threshold`).
    pub image_threshold: f32,
    /// Pixel-map threshold fitted by `eval`, for defect boxes; absent in hand-written entries.
    pub pixel_threshold: Option<f32>,
    /// `eval`'s thresholds per image-score rule (`settings.image_thresholds`: `mean`, `max`,
    /// `top_1_percent`), each fitted on the same validation images.
    pub rule_thresholds: Vec<(String, f32)>,
}

fn number(spec: &ModelSpec, key: &'static str) -> Result<Option<f64>, IndustrialError> {
    match spec.settings.get(key) {
        None => Ok(None),
        Some(toml::Value::Float(v)) => Ok(Some(*v)),
        Some(toml::Value::Integer(v)) => Ok(Some(*v as f64)),
        Some(other) => Err(IndustrialError::ModelSetting {
            model: spec.name.clone(),
            key,
            detail: format!("{other} is not a number"),
        }),
    }
}

/// `settings.image_thresholds`, a table of finite numbers by rule name.
fn rule_thresholds(spec: &ModelSpec) -> Result<Vec<(String, f32)>, IndustrialError> {
    let Some(value) = spec.settings.get("image_thresholds") else {
        return Ok(Vec::new());
    };
    let invalid = |detail: String| IndustrialError::ModelSetting {
        model: spec.name.clone(),
        key: "image_thresholds",
        detail,
    };
    let toml::Value::Table(table) = value else {
        return Err(invalid(format!("{value} is not a table")));
    };
    table
        .iter()
        .map(|(rule, value)| match value {
            toml::Value::Float(v) if v.is_finite() => Ok((rule.clone(), *v as f32)),
            toml::Value::Integer(v) => Ok((rule.clone(), *v as f32)),
            other => Err(invalid(format!("{rule} = {other} is not a finite number"))),
        })
        .collect()
}

impl IsstadSpec {
    /// The fitted image threshold for `rule`: the entry's own threshold for the paper's mean,
    /// `image_thresholds` for the others (the top-k mean only at the fraction `eval` fits,
    /// 1 %). `None` when the model carries none for that rule.
    pub fn threshold_for(&self, rule: ImageScore) -> Option<f32> {
        let name = match rule {
            ImageScore::Mean => return Some(self.image_threshold),
            ImageScore::Max => "max",
            ImageScore::TopKMean { fraction } if (fraction - 0.01).abs() < 1e-9 => "top_1_percent",
            ImageScore::TopKMean { .. } => return None,
        };
        self.rule_thresholds
            .iter()
            .find(|(rule, _)| rule == name)
            .map(|&(_, threshold)| threshold)
    }

    /// Reads and checks a manifest entry: family, settings, and the graph's boundary
    /// (`image` `[1, 3, S, S]` f32 in; `probability` and `reconstruction_error` `[1, S, S]` f32
    /// out), so a model exported for another size or by another tool is refused at load.
    pub fn from_manifest(spec: &ModelSpec) -> Result<Self, IndustrialError> {
        let setting = |key, detail: String| IndustrialError::ModelSetting {
            model: spec.name.clone(),
            key,
            detail,
        };
        if spec.family != FAMILY {
            return Err(setting(
                "family",
                format!("{:?} is not {FAMILY:?}", spec.family),
            ));
        }
        let side = match spec.settings.get("image_size") {
            Some(toml::Value::Integer(v)) if *v >= 1 => *v as usize,
            Some(other) => {
                return Err(setting(
                    "image_size",
                    format!("{other} is not a positive integer"),
                ));
            }
            None => return Err(setting("image_size", "missing".into())),
        };
        let map_sigma = number(spec, "map_sigma")?.map_or(DEFAULT_MAP_SIGMA, |v| v as f32);
        let pixel_threshold = number(spec, "pixel_threshold")?.map(|v| v as f32);
        if let Some(value) = pixel_threshold.filter(|v| !v.is_finite()) {
            return Err(setting(
                "pixel_threshold",
                format!("{value} is not a finite number"),
            ));
        }
        let tensor = |tensor: &str, expected: String, got: String| IndustrialError::Tensor {
            model: spec.name.clone(),
            tensor: tensor.into(),
            expected,
            got,
        };
        let describe = |t: &TensorSpec| format!("{:?} {:?}", t.dtype, t.shape);
        let map_shape = [1, side, side];
        super::check_image_input(spec, side)?;
        for name in [PROBABILITY, RECONSTRUCTION_ERROR] {
            let Some((_, output)) = spec.output(name) else {
                return Err(tensor(
                    name,
                    format!("an output named {name:?}"),
                    format!(
                        "outputs {:?}",
                        spec.outputs
                            .iter()
                            .map(TensorSpec::label)
                            .collect::<Vec<_>>()
                    ),
                ));
            };
            if output.dtype != ElementType::F32 || output.shape != map_shape {
                return Err(tensor(
                    name,
                    format!("F32 {map_shape:?} (image_size {side})"),
                    describe(output),
                ));
            }
        }
        Ok(Self {
            model: spec.name.clone(),
            side,
            map_sigma,
            image_threshold: spec.threshold,
            rule_thresholds: rule_thresholds(spec)?,
            pixel_threshold,
        })
    }
}

/// One frame's model outputs, with the frame (or region of it) they were computed from.
#[derive(Debug, Clone)]
pub struct PixelMaps {
    pub frame: Arc<VideoFrame>,
    /// The rectangle of the frame the model saw; boxes are mapped back into it.
    pub region: Crop,
    pub side: usize,
    pub outputs: MapOutputs,
}

/// What a method hands the decide stage.
#[derive(Debug, Clone)]
pub enum MapOutputs {
    /// ISSTAD's P and R (`side·side` values each, row-major): the decide stage computes the
    /// pixel map and the image score under the profile's rule.
    Isstad {
        probabilities: Vec<f32>,
        reconstruction_error: Vec<f32>,
    },
    /// A finished pixel map and image score (PatchCore's).
    Scored { map: Vec<f32>, score: f32 },
}

pub struct IsstadDetector {
    spec: IsstadSpec,
    session: Session,
    input_shape: [usize; 4],
    probability_output: usize,
    reconstruction_output: usize,
    probabilities: Vec<f32>,
    reconstruction_error: Vec<f32>,
}

pub(in crate::models::industrial) fn stage_error(detail: String) -> StageError {
    StageError {
        stage: "detect defects",
        detail,
    }
}

/// Runs one normalised `[3, S, S]` image through a factory-line graph whose input is
/// `input_shape` (`[1, 3, S, S]`); returns the graph's outputs.
pub(in crate::models::industrial) fn run_image(
    session: &mut Session,
    input_shape: &[usize; 4],
    image: &[f32],
) -> Result<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>, StageError> {
    let input = Tensor::from_shape(input_shape, image).map_err(|err| {
        stage_error(format!(
            "image of {} values for input {input_shape:?}: {err:#}",
            image.len()
        ))
    })?;
    session
        .run(vec![input])
        .map_err(|err| stage_error(err.to_string()))
}

impl IsstadDetector {
    /// A detector on a loaded plan; the plan's manifest entry is checked first.
    pub fn new(plan: &Plan) -> Result<Self, IndustrialError> {
        let spec = IsstadSpec::from_manifest(plan.spec())?;
        // `from_manifest` found both outputs.
        let index = |name: &str| plan.spec().output(name).map_or(0, |(ix, _)| ix);
        let (probability_output, reconstruction_output) =
            (index(PROBABILITY), index(RECONSTRUCTION_ERROR));
        let side = spec.side;
        Ok(Self {
            session: plan.session()?,
            input_shape: [1, 3, side, side],
            probability_output,
            reconstruction_output,
            probabilities: vec![0.0; side * side],
            reconstruction_error: vec![0.0; side * side],
            spec,
        })
    }

    pub fn spec(&self) -> &IsstadSpec {
        &self.spec
    }

    /// Runs one `[3, S, S]` image; returns P and R, in buffers reused from run to run.
    pub fn run(&mut self, image: &[f32]) -> Result<(&[f32], &[f32]), StageError> {
        let outputs = run_image(&mut self.session, &self.input_shape, image)?;
        self.session
            .read_f32(&outputs, self.probability_output, &mut self.probabilities)
            .map_err(|err| stage_error(err.to_string()))?;
        self.session
            .read_f32(
                &outputs,
                self.reconstruction_output,
                &mut self.reconstruction_error,
            )
            .map_err(|err| stage_error(err.to_string()))?;
        Ok((
            self.probabilities.as_slice(),
            self.reconstruction_error.as_slice(),
        ))
    }
}
