//! The inference graph of a trained ISSTAD: one normalised image in, the two per-pixel maps the
//! paper scores with out. The anomaly map itself (blur, products, image score) is computed by
//! the runtime in Rust (`models::industrial::anomaly_map`), so its options stay configurable.
//!
//! Input `image` `[1, 3, S, S]` in [−1, 1]; outputs `probability` `[1, S, S]` (P, the heads'
//! mean anomaly probability) and `reconstruction_error` `[1, S, S]` (R). Three rewrites keep
//! the graph small and int8-friendly, each exact in real arithmetic:
//! - the patch embedding is a MatMul on patches cut by Reshape/Transpose;
//! - the shared classifier runs once on every block's tokens stacked along the batch axis;
//! - its two-class softmax becomes `sigmoid(x·(w₁ − w₀) + b₁ − b₀)`, halving that product.

use super::model::{Isstad, IsstadEncoder, MaeEncoder, PixelDecoder, sincos_position_embedding};
use crate::train::onnx::{ExportError, ExportOnnx, ModelProto, OnnxGraph, Value, tensor_values};

pub const INPUT: &str = "image";
pub const PROBABILITY: &str = "probability";
pub const RECONSTRUCTION_ERROR: &str = "reconstruction_error";

/// `[1, 3, S, S]` → `[1, N, p·p·3]` in the (row, column, channel) order of `patchify`.
fn patchify(graph: &mut OnnxGraph, image: &Value, patch: usize) -> Result<Value, ExportError> {
    let side = image.shape[2];
    let grid = side / patch;
    let split = graph.reshape(image, &[1, 3, grid, patch, grid, patch])?;
    let ordered = graph.transpose(&split, &[0, 2, 4, 3, 5, 1])?;
    graph.reshape(&ordered, &[1, grid * grid, patch * patch * 3])
}

/// `[1, N, p·p]` → `[1, S, S]`.
fn unpatchify_map(
    graph: &mut OnnxGraph,
    tokens: &Value,
    patch: usize,
) -> Result<Value, ExportError> {
    let n = tokens.shape[1];
    let grid = (n as f64).sqrt().round() as usize;
    let split = graph.reshape(tokens, &[1, grid, grid, patch, patch])?;
    let ordered = graph.transpose(&split, &[0, 1, 3, 2, 4])?;
    graph.reshape(&ordered, &[1, grid * patch, grid * patch])
}

fn positions(
    graph: &mut OnnxGraph,
    name: &str,
    dim: usize,
    grid: usize,
    skip_class_row: bool,
) -> Result<Value, ExportError> {
    let table = sincos_position_embedding(dim, grid);
    if skip_class_row {
        graph.constant_f32(name, &[1, grid * grid, dim], &table[dim..])
    } else {
        graph.constant_f32(name, &[1, 1 + grid * grid, dim], &table)
    }
}

impl MaeEncoder {
    /// Patch tokens `[1, N, p·p·3]` → encoded tokens `[1, 1 + N, D]`.
    fn export_tokens(
        &self,
        graph: &mut OnnxGraph,
        patches: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let [_, _, dim] = self.cls_token.dims();
        let tokens =
            self.patch_embed
                .export_onnx(graph, patches, &format!("{scope}.patch_embed"))?;
        let pos = positions(graph, &format!("{scope}.positions"), dim, self.grid, true)?;
        let tokens = graph.add(&tokens, &pos)?;
        let cls_values = tensor_values(self.cls_token.val(), "cls_token")?;
        let cls = graph.constant_f32(&format!("{scope}.cls_token"), &[1, 1, dim], &cls_values)?;
        let mut x = graph.concat(&[&cls, &tokens], 1)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.export_onnx(graph, &x, &format!("{scope}.blocks.{i}"))?;
        }
        self.norm.export_onnx(graph, &x, &format!("{scope}.norm"))
    }
}

impl PixelDecoder {
    /// Encoded tokens → (P tokens `[1, N, p·p]`, reconstructed patches `[1, N, p·p·3]`).
    fn export_heads(
        &self,
        graph: &mut OnnxGraph,
        encoded: &Value,
        scope: &str,
    ) -> Result<(Value, Value), ExportError> {
        let [_, _, dim] = self.mask_token.dims();
        let patch = self.patch;
        let x = self
            .embed
            .export_onnx(graph, encoded, &format!("{scope}.embed"))?;
        let pos = positions(graph, &format!("{scope}.positions"), dim, self.grid, false)?;
        let mut x = graph.add(&x, &pos)?;
        let tokens = 1 + self.grid * self.grid;
        let mut per_block = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.export_onnx(graph, &x, &format!("{scope}.blocks.{i}"))?;
            per_block.push(graph.slice(&x, &[1], &[(1, tokens)])?);
        }
        let stacked = graph.concat(&per_block.iter().collect::<Vec<_>>(), 0)?;
        let (weight, bias) = self.anomaly_logit_weights()?;
        let weight = graph.constant_f32(
            &format!("{scope}.anomaly_logit.weight"),
            &[dim, patch * patch],
            &weight,
        )?;
        let bias = graph.constant_f32(
            &format!("{scope}.anomaly_logit.bias"),
            &[patch * patch],
            &bias,
        )?;
        let logit = graph.matmul(&stacked, &weight)?;
        let logit = graph.add(&logit, &bias)?;
        let probability = graph.unary("Sigmoid", &logit)?;
        let probability = graph.reduce_mean(&probability, &[0], true)?;
        let normed = self.norm.export_onnx(graph, &x, &format!("{scope}.norm"))?;
        let normed = graph.slice(&normed, &[1], &[(1, tokens)])?;
        let reconstruction =
            self.reconstruction
                .export_onnx(graph, &normed, &format!("{scope}.reconstruction"))?;
        Ok((probability, reconstruction))
    }

    /// `w₁ − w₀` and `b₁ − b₀` of the pixel classifier, `[D, p·p]` row-major and `[p·p]`.
    fn anomaly_logit_weights(&self) -> Result<(Vec<f32>, Vec<f32>), ExportError> {
        let [dim, outputs] = self.pixel_classifier.weight.dims();
        let weight = tensor_values(
            self.pixel_classifier.weight.val(),
            "pixel_classifier.weight",
        )?;
        let pixels = outputs / 2;
        let mut difference = Vec::with_capacity(dim * pixels);
        for row in weight.chunks(outputs) {
            difference.extend(row.chunks(2).map(|pair| pair[1] - pair[0]));
        }
        let bias = match &self.pixel_classifier.bias {
            Some(bias) => tensor_values(bias.val(), "pixel_classifier.bias")?
                .chunks(2)
                .map(|pair| pair[1] - pair[0])
                .collect(),
            None => vec![0.0; pixels],
        };
        Ok((difference, bias))
    }
}

impl Isstad {
    /// The inference graph for one image of the configured side.
    pub fn to_onnx(&self) -> Result<ModelProto, ExportError> {
        let patch = self.decoder.patch;
        let side = self.decoder.grid * patch;
        let mut graph = OnnxGraph::new("isstad_edge");
        let image = graph.input(INPUT, &[1, 3, side, side])?;
        let patches = patchify(&mut graph, &image, patch)?;
        let encoded = match &self.encoder {
            IsstadEncoder::Mae(encoder) => {
                encoder.export_tokens(&mut graph, &patches, "encoder")?
            }
            IsstadEncoder::MobileNetV2(encoder) => {
                encoder.export_tokens(&mut graph, &image, "encoder")?
            }
        };
        let (probability, reconstruction) =
            self.decoder.export_heads(&mut graph, &encoded, "decoder")?;
        let difference = graph.binary("Sub", &reconstruction, &patches)?;
        let squared = graph.mul(&difference, &difference)?;
        let n = squared.shape[1];
        let per_channel = graph.reshape(&squared, &[1, n, patch * patch, 3])?;
        let error = graph.reduce_mean(&per_channel, &[3], false)?;
        let probability = unpatchify_map(&mut graph, &probability, patch)?;
        let error = unpatchify_map(&mut graph, &error, patch)?;
        graph.output(&probability, PROBABILITY)?;
        graph.output(&error, RECONSTRUCTION_ERROR)?;
        Ok(graph.finish())
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::super::model::IsstadConfig;
    use crate::rng::SplitMix64;
    use crate::train::parity::{plan, relative_difference, run_plan_outputs};

    #[test]
    fn tract_runs_the_graph_as_burn_computes_it() {
        let config = IsstadConfig::new()
            .with_image_size(32)
            .with_patch_size(8)
            .with_encoder_dim(16)
            .with_encoder_depth(2)
            .with_encoder_heads(2)
            .with_decoder_dim(12)
            .with_decoder_depth_stage1(1)
            .with_decoder_depth(3)
            .with_decoder_heads(3);
        let device = Device::flex();
        let model = config.init_isstad(config.init_mae(&device), &device);
        let mut rng = SplitMix64::new(9);
        let image: Vec<f32> = (0..3 * 32 * 32)
            .map(|_| rng.range(-1.0, 1.0) as f32)
            .collect();
        let shape = [1, 3, 32, 32];
        let outputs = model.pixel_outputs(Tensor::from_data(
            TensorData::new(image.clone(), shape),
            &device,
        ));
        let burn = [
            outputs.probability.into_data().try_to_vec::<f32>().unwrap(),
            outputs
                .reconstruction_error
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        ];
        let onnx = model.to_onnx().unwrap();
        let tract = run_plan_outputs(&plan(&onnx).unwrap(), &shape, &image).unwrap();
        assert_eq!(tract.len(), 2);
        for (b, t) in burn.iter().zip(&tract) {
            let gap = relative_difference(b, t).unwrap();
            assert!(gap < 1e-4, "relative gap {gap}");
        }
    }
}
