//! FERS-edge's inference graph in ONNX: one `[1, T, T, C]` tile in, the `spectral` and
//! `spatial` maps out (the runtime's contract, [`crate::hsi::fers`]). The 1×1 layers are
//! `MatMul`s over the last axis, which [`crate::train::quantize`] turns into int8
//! `MatMulInteger`; the frozen MobileNetV2 convolutions stay fp32.

use super::model::{BANK_PAD, FrozenBlocks, POOL_SIZES, PixelMlp, RebelliousStudent, SpectralFen};
use crate::hsi::fers::{SPATIAL_OUTPUT, SPECTRAL_OUTPUT};
use crate::train::mobilenet::{IMAGENET_MEAN, IMAGENET_STD};
use crate::train::onnx::layers::tensor_values;
use crate::train::onnx::{ExportError, ExportOnnx, ModelProto, OnnxGraph, Value};

/// The graph input's name.
pub const INPUT: &str = "cube";

impl ExportOnnx for PixelMlp {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        export_mlp(self, graph, input, scope, "Relu")
    }
}

/// [`PixelMlp::forward`] (`last` = `Relu`) or [`PixelMlp::gate`] (`Sigmoid`), run on the
/// pixels flattened to rows when the input has more than two axes.
fn export_mlp(
    mlp: &PixelMlp,
    graph: &mut OnnxGraph,
    input: &Value,
    scope: &str,
    last: &str,
) -> Result<Value, ExportError> {
    let rows = if input.rank() > 2 {
        flatten_pixels(graph, input)?
    } else {
        input.clone()
    };
    let x = mlp
        .first
        .export_onnx(graph, &rows, &format!("{scope}.first"))?;
    let x = graph.unary("Relu", &x)?;
    let x = mlp
        .second
        .export_onnx(graph, &x, &format!("{scope}.second"))?;
    let x = graph.unary(last, &x)?;
    if input.rank() > 2 {
        unflatten_pixels(graph, &x, input)
    } else {
        Ok(x)
    }
}

/// `[1, H, W, C]` → `[H·W, C]`: tract runs the int8 matmul of a rank-2 activation on its
/// fused kernel, and a rank-4 one noticeably slower (measured on the first export).
fn flatten_pixels(graph: &mut OnnxGraph, x: &Value) -> Result<Value, ExportError> {
    let channels = x.shape.last().copied().unwrap_or(0);
    let pixels = x.shape.iter().product::<usize>() / channels.max(1);
    graph.reshape(x, &[pixels, channels])
}

/// The inverse of [`flatten_pixels`] for an output of `y.shape[1]` channels.
fn unflatten_pixels(graph: &mut OnnxGraph, y: &Value, like: &Value) -> Result<Value, ExportError> {
    let mut shape = like.shape.clone();
    if let Some(last) = shape.last_mut() {
        *last = y.shape[1];
    }
    graph.reshape(y, &shape)
}

impl ExportOnnx for FrozenBlocks {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let mut x = input.clone();
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.export_onnx(graph, &x, &format!("{scope}.{index}"))?;
        }
        Ok(x)
    }
}

impl ExportOnnx for SpectralFen {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let pixels = flatten_pixels(graph, input)?;
        let x = self
            .conv_h
            .export_onnx(graph, &pixels, &format!("{scope}.conv_h"))?;
        let x = unflatten_pixels(graph, &x, input)?;
        let x = graph.transpose(&x, &[0, 3, 1, 2])?;
        let x = graph.pad_reflect_2d(&x, BANK_PAD)?;
        let x = self
            .level1
            .export_onnx(graph, &x, &format!("{scope}.level1"))?;
        let (h, w) = (x.shape[2], x.shape[3]);
        let x = graph.slice(
            &x,
            &[2, 3],
            &[(BANK_PAD, h - BANK_PAD), (BANK_PAD, w - BANK_PAD)],
        )?;
        let x = graph.transpose(&x, &[0, 2, 3, 1])?;
        self.projection
            .export_onnx(graph, &x, &format!("{scope}.projection"))
    }
}

impl ExportOnnx for RebelliousStudent {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let &[_, rows, cols, _] = input.shape.as_slice() else {
            return Err(ExportError::Incompatible {
                op: "RebelliousStudent expecting [1, H, W, C]".into(),
                shapes: vec![input.shape.clone()],
            });
        };
        let rgb = export_mlp(
            &self.to_rgb,
            graph,
            input,
            &format!("{scope}.to_rgb"),
            "Sigmoid",
        )?;
        let inverse_std = IMAGENET_STD.map(|s| 1.0 / s);
        let offset: Vec<f32> = IMAGENET_MEAN
            .iter()
            .zip(IMAGENET_STD)
            .map(|(m, s)| -m / s)
            .collect();
        let inverse_std =
            graph.constant_f32(&format!("{scope}.imagenet_scale"), &[3], &inverse_std)?;
        let offset = graph.constant_f32(&format!("{scope}.imagenet_offset"), &[3], &offset)?;
        let scaled = graph.mul(&rgb, &inverse_std)?;
        let image = graph.add(&scaled, &offset)?;
        let image = graph.transpose(&image, &[0, 3, 1, 2])?;
        let x = self
            .stem
            .export_onnx(graph, &image, &format!("{scope}.stem"))?;
        let trunk = self
            .trunk
            .export_onnx(graph, &x, &format!("{scope}.trunk"))?;
        // LightSPP's first layer is linear and pixel-wise, and bilinear upsampling is linear
        // and channel-wise, so W·[up(p₁); up(p₂); up(p₄)] = Σₖ Uₖ·(pₖᵀ·Wₖ): the 288→128
        // projection runs on the 1, 4 and 16 pooled cells and only its 128-channel result is
        // upsampled, by a constant interpolation matrix. Burn computes the literal order at
        // training; the parity check covers the reassociation. (At 64×64 this removes about
        // 150 MMAC and three Resize ops that took a third of tract's time.)
        let hidden = self.spp.first.weight.dims()[1];
        let weights = tensor_values(
            self.spp.first.weight.val(),
            &format!("{scope}.spp.first.weight"),
        )?;
        let channels = trunk.shape[1];
        let mut upsampled: Option<Value> = None;
        for (k, size) in POOL_SIZES.into_iter().enumerate() {
            let pooled = if trunk.shape[2] == size && trunk.shape[3] == size {
                trunk.clone()
            } else {
                graph.adaptive_average_pool(&trunk, size)?
            };
            let cells = graph.reshape(&pooled, &[channels, size * size])?;
            let cells = graph.transpose(&cells, &[1, 0])?;
            let block = &weights[k * channels * hidden..(k + 1) * channels * hidden];
            let w = graph.constant_f32(
                &format!("{scope}.spp.first.weight.pool{size}"),
                &[channels, hidden],
                block,
            )?;
            let projected = graph.matmul(&cells, &w)?;
            let interpolation = graph.constant_f32(
                &format!("{scope}.spp.upsample{size}"),
                &[rows * cols, size * size],
                &bilinear_upsampling(size, rows, cols),
            )?;
            let up = graph.matmul(&interpolation, &projected)?;
            upsampled = Some(match upsampled {
                None => up,
                Some(sum) => graph.add(&sum, &up)?,
            });
        }
        let Some(sum) = upsampled else {
            return Err(ExportError::Incompatible {
                op: "LightSPP without pooling sizes".into(),
                shapes: vec![],
            });
        };
        let x = graph.unary("Relu", &sum)?;
        let x = self
            .spp
            .second
            .export_onnx(graph, &x, &format!("{scope}.spp.second"))?;
        let features = graph.unary("Relu", &x)?;
        let context = graph.reduce_mean(&features, &[0], true)?;
        let gate = export_mlp(&self.se, graph, &context, &format!("{scope}.se"), "Sigmoid")?;
        let gated = graph.mul(&features, &gate)?;
        unflatten_pixels(graph, &gated, input)
    }
}

/// The `(rows·cols) × (size·size)` matrix of torch's bilinear upsampling (half-pixel centres,
/// source coordinates clamped to the edge cells) from a `size × size` grid.
fn bilinear_upsampling(size: usize, rows: usize, cols: usize) -> Vec<f32> {
    let taps = |input: usize, output: usize| -> Vec<[(usize, f32); 2]> {
        let ratio = input as f64 / output as f64;
        (0..output)
            .map(|o| {
                let source = ((o as f64 + 0.5) * ratio - 0.5).max(0.0);
                let low = (source.floor() as usize).min(input - 1);
                let high = (low + 1).min(input - 1);
                let weight = (source - low as f64) as f32;
                [(low, 1.0 - weight), (high, weight)]
            })
            .collect()
    };
    let (along_rows, along_cols) = (taps(size, rows), taps(size, cols));
    let mut matrix = vec![0.0f32; rows * cols * size * size];
    for (r, row_taps) in along_rows.iter().enumerate() {
        for (c, col_taps) in along_cols.iter().enumerate() {
            let out = (r * cols + c) * size * size;
            for &(i, wi) in row_taps {
                for &(j, wj) in col_taps {
                    matrix[out + i * size + j] += wi * wj;
                }
            }
        }
    }
    matrix
}

/// The whole inference graph for `tile × tile` inputs.
pub fn to_onnx(
    spectral: &SpectralFen,
    spatial: &RebelliousStudent,
    tile: usize,
) -> Result<ModelProto, ExportError> {
    let [bands, _] = spectral.conv_h.weight.dims();
    let mut graph = OnnxGraph::new("fers_edge");
    let input = graph.input(INPUT, &[1, tile, tile, bands])?;
    let spe = spectral.export_onnx(&mut graph, &input, "spectral")?;
    let spa = spatial.export_onnx(&mut graph, &input, "spatial")?;
    graph.output(&spe, SPECTRAL_OUTPUT)?;
    graph.output(&spa, SPATIAL_OUTPUT)?;
    Ok(graph.finish())
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::module::{adaptive_avg_pool2d, interpolate};
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions, PadMode};

    use crate::train::onnx::OnnxGraph;
    use crate::train::parity::compare_values;

    fn input(shape: [usize; 4]) -> (Vec<f32>, Tensor<4>) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let tensor = Tensor::from_data(TensorData::new(values.clone(), shape), &Device::flex());
        (values, tensor)
    }

    /// Pooling and the upsampling matrix the student's export uses, against burn's ops.
    #[test]
    fn pooling_and_upsampling_match_burn() {
        let shape = [1, 3, 4, 4];
        let (values, x) = input(shape);
        for (size, out) in [(1, 16), (2, 16), (4, 16), (2, 6), (4, 5)] {
            let mut graph = OnnxGraph::new("t");
            let v = graph.input("x", &shape).unwrap();
            let pooled = if size == 4 {
                v
            } else {
                graph.adaptive_average_pool(&v, size).unwrap()
            };
            let cells = graph.reshape(&pooled, &[3, size * size]).unwrap();
            let matrix = super::bilinear_upsampling(size, out, out);
            let matrix_t: Vec<f32> = (0..size * size)
                .flat_map(|i| (0..out * out).map(move |o| (i, o)))
                .map(|(i, o)| matrix[o * size * size + i])
                .collect();
            let up = graph
                .constant_f32("up", &[size * size, out * out], &matrix_t)
                .unwrap();
            let y = graph.matmul(&cells, &up).unwrap();
            let y = graph.reshape(&y, &[1, 3, out, out]).unwrap();
            graph.output(&y, "y").unwrap();
            let expected = interpolate(
                adaptive_avg_pool2d(x.clone(), [size, size]),
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([out, out]),
            );
            let parity = compare_values(expected, &graph.finish(), &shape, &values, 1e-5);
            assert!(parity.is_ok(), "pool {size} → {out}: {parity:?}");
        }
    }

    #[test]
    fn reflect_pad_and_slice_match_burn() {
        let shape = [1, 3, 4, 4];
        let (values, x) = input(shape);
        let mut graph = OnnxGraph::new("t");
        let v = graph.input("x", &shape).unwrap();
        let padded = graph.pad_reflect_2d(&v, 2).unwrap();
        let y = graph.slice(&padded, &[2, 3], &[(1, 7), (2, 5)]).unwrap();
        graph.output(&y, "y").unwrap();
        let expected = x
            .pad((2, 2, 2, 2), PadMode::Reflect)
            .slice([0..1, 0..3, 1..7, 2..5]);
        let parity = compare_values(expected, &graph.finish(), &shape, &values, 1e-6);
        assert!(parity.is_ok(), "pad + slice: {parity:?}");
    }
}
