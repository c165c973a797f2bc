//! The pretrained backbone PatchCore reads: torchvision's ImageNet MobileNetV2 (BSD-3, from the
//! PyPI wheel `scripts/fetch-mobilenet.sh` fetches), read at the [`Tap`]s given (by default
//! [`PATCH_TAPS`](crate::train::mobilenet::PATCH_TAPS)), exported as one ONNX graph with one
//! output per tap and checked against burn on every output before it is written.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::models::industrial::patchcore::embed::TapShape;
use crate::train::mobilenet::{MobileNetV2, Tap};
use crate::train::onnx::{self, tensor_values};
use crate::train::parity::{self, relative_difference};
use crate::train::pytorch::read_state_dict;

/// Largest gap between burn and tract on any tap output, relative to the output's largest
/// value, that an export may have.
pub const TOLERANCE: f32 = 1e-4;

/// What [`export`] wrote and checked.
#[derive(Debug, Clone)]
pub struct BackboneExport {
    pub onnx: PathBuf,
    pub taps: Vec<TapShape>,
    /// Per tap, tract's largest difference from burn relative to the largest value.
    pub relative_differences: Vec<f32>,
}

/// Exports MobileNetV2's patch-feature graph for `side`×`side` images to `out`, from the
/// torchvision weights at `weights`, checking tract against burn on `probe` (a normalised
/// `[3, side, side]` image) to [`TOLERANCE`] on every output.
pub fn export(
    weights: &Path,
    out: &Path,
    side: usize,
    taps: &[Tap],
    probe: &[f32],
) -> Result<BackboneExport, super::IndustrialFitError> {
    let state = read_state_dict(weights).map_err(crate::train::TrainError::from)?;
    let device = Device::flex();
    let net =
        MobileNetV2::from_torchvision(&state, &device).map_err(crate::train::TrainError::from)?;
    let shape = [1, 3, side, side];
    let model = net
        .to_taps_onnx(shape, taps)
        .map_err(crate::train::TrainError::from)?;
    let input = Tensor::<4>::from_data(TensorData::new(probe.to_vec(), shape), &device);
    let burn_outputs = net
        .tap_outputs(input, taps)
        .map_err(crate::train::TrainError::from)?;
    let plan = parity::plan(&model).map_err(crate::train::TrainError::from)?;
    let tract_outputs =
        parity::run_plan_outputs(&plan, &shape, probe).map_err(crate::train::TrainError::from)?;
    let mut shapes = Vec::with_capacity(taps.len());
    let mut relative_differences = Vec::with_capacity(taps.len());
    for ((index, (tap, burn_output)), tract_output) in taps
        .iter()
        .zip(burn_outputs)
        .enumerate()
        .zip(&tract_outputs)
    {
        let [_, channels, height, width] = burn_output.dims();
        let name = tap.name();
        let burn_values =
            tensor_values(burn_output, &name).map_err(crate::train::TrainError::from)?;
        let relative = relative_difference(&burn_values, tract_output)
            .map_err(crate::train::TrainError::from)?;
        if relative > TOLERANCE {
            return Err(
                crate::train::TrainError::from(parity::ParityError::Mismatch {
                    max_abs_diff: relative,
                    index,
                    tolerance: TOLERANCE,
                })
                .into(),
            );
        }
        shapes.push(TapShape::new(&name, channels, height, width));
        relative_differences.push(relative);
    }
    onnx::save(&model, out).map_err(crate::train::TrainError::from)?;
    Ok(BackboneExport {
        onnx: out.to_path_buf(),
        taps: shapes,
        relative_differences,
    })
}

/// What [`quantize`] wrote and measured.
#[derive(Debug, Clone)]
pub struct BackboneQuantization {
    pub int8: PathBuf,
    pub convolutions: usize,
    pub calibration_images: usize,
    /// Per output, int8's largest difference from fp32 on a good image outside the
    /// calibration set, relative to fp32's largest value.
    pub relative_differences: Vec<f32>,
}

/// Writes an int8 version of the backbone graph at `backbone` to `out`: every convolution on
/// integer kernels, activation scales calibrated on the first `images` good images of `data`
/// (resized and normalised as the fit reads them), checked on the next one. A bank fitted on
/// the int8 graph records its hash like any other backbone's.
pub fn quantize(
    backbone: &Path,
    data: &Path,
    out: &Path,
    side: usize,
    images: usize,
) -> Result<BackboneQuantization, super::IndustrialFitError> {
    use crate::train::TrainError;
    let goods = super::fit::good_images(data)?;
    if images == 0 || goods.len() <= images {
        return Err(super::IndustrialFitError::Data {
            what: "too few good images",
            detail: format!(
                "{} PNGs; {images} calibrate the int8 graph and one more checks it",
                goods.len()
            ),
            path: data.to_path_buf(),
        });
    }
    let mut resizer = super::fit::imagenet_resizer(side)?;
    let inputs = goods[..=images]
        .iter()
        .map(|path| super::fit::load_image(path, &mut resizer))
        .collect::<Result<Vec<_>, _>>()?;
    let model = onnx::load(backbone).map_err(TrainError::from)?;
    let shape = [1, 3, side, side];
    let done = crate::train::quantize::quantize_convolutions(&model, &shape, &inputs[..images])
        .map_err(TrainError::from)?;
    let check = &inputs[images];
    let fp32 = parity::run_plan_outputs(
        &parity::plan(&model).map_err(TrainError::from)?,
        &shape,
        check,
    )
    .map_err(TrainError::from)?;
    let int8 = parity::run_plan_outputs(
        &parity::plan(&done.model).map_err(TrainError::from)?,
        &shape,
        check,
    )
    .map_err(TrainError::from)?;
    let relative_differences = fp32
        .iter()
        .zip(&int8)
        .map(|(a, b)| relative_difference(a, b).map_err(TrainError::from))
        .collect::<Result<Vec<_>, _>>()?;
    onnx::save(&done.model, out).map_err(TrainError::from)?;
    Ok(BackboneQuantization {
        int8: out.to_path_buf(),
        convolutions: done.layers.len(),
        calibration_images: images,
        relative_differences,
    })
}
