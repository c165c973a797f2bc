//! The learned head: YAMNet's 1024-d embedding to one logit per alert label, trained with
//! burn on the training part's patches and exported as an ONNX graph tract runs after YAMNet.
//!
//! One-vs-rest logistic outputs (a patch holds at most one marked event, but the labels are
//! scored independently, as the runtime's hysteresis treats each label on its own). Each
//! label's positives are weighted by its negatives-to-positives ratio (capped) so that a rare
//! label is not learned as "never".

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, decay::WeightDecayConfig};
use burn::prelude::Config;
use burn::tensor::{Device, Tensor, TensorData};

use super::EventHeadError;
use super::features::Patch;
use crate::rng::SplitMix64;
use crate::train::TrainError;
use crate::train::epoch::scalar;
use crate::train::onnx::{ExportOnnx, ModelProto, OnnxGraph};

#[derive(Config, Debug)]
pub struct EventHeadConfig {
    pub inputs: usize,
    pub labels: usize,
    /// Width of one ReLU hidden layer; 0 for a linear head.
    #[config(default = 0)]
    pub hidden: usize,
}

#[derive(Module, Debug)]
pub struct EventHead {
    hidden: Option<Linear>,
    output: Linear,
}

impl EventHeadConfig {
    pub fn init(&self, device: &Device) -> EventHead {
        let (hidden, width) = if self.hidden > 0 {
            (
                Some(LinearConfig::new(self.inputs, self.hidden).init(device)),
                self.hidden,
            )
        } else {
            (None, self.inputs)
        };
        EventHead {
            hidden,
            output: LinearConfig::new(width, self.labels).init(device),
        }
    }
}

impl EventHead {
    /// `[N, inputs]` embeddings → `[N, labels]` logits.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(hidden) => burn::tensor::activation::relu(hidden.forward(x)),
            None => x,
        };
        self.output.forward(x)
    }

    /// The inference graph: input `embedding` `[1, inputs]` (standardised inside), output
    /// `logits` `[1, labels]`.
    pub fn export(
        &self,
        inputs: usize,
        standardizer: &Standardizer,
    ) -> Result<ModelProto, EventHeadError> {
        let mut graph = OnnxGraph::new("vigil-audio-event-head");
        let x = graph
            .input("embedding", &[1, inputs])
            .map_err(TrainError::from)?;
        let mean = graph
            .constant_f32("standardize.mean", &[1, inputs], &standardizer.mean)
            .map_err(TrainError::from)?;
        let inv_std = graph
            .constant_f32("standardize.inv_std", &[1, inputs], &standardizer.inv_std)
            .map_err(TrainError::from)?;
        let x = graph.binary("Sub", &x, &mean).map_err(TrainError::from)?;
        let x = graph.mul(&x, &inv_std).map_err(TrainError::from)?;
        let x = match &self.hidden {
            Some(hidden) => {
                let y = hidden
                    .export_onnx(&mut graph, &x, "hidden")
                    .map_err(TrainError::from)?;
                graph.unary("Relu", &y).map_err(TrainError::from)?
            }
            None => x,
        };
        let logits = self
            .output
            .export_onnx(&mut graph, &x, "output")
            .map_err(TrainError::from)?;
        graph.output(&logits, "logits").map_err(TrainError::from)?;
        Ok(graph.finish())
    }
}

/// Per-dimension standardisation of the embedding, fitted on the training patches and folded
/// into the exported graph: YAMNet's embedding dimensions differ in scale by orders of
/// magnitude, and a logistic head on the raw values trains slowly and unevenly.
#[derive(Debug, Clone)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
}

impl Standardizer {
    pub fn fit(rows: &[&[f32]]) -> Self {
        let width = rows.first().map_or(0, |r| r.len());
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0f64; width];
        let mut square = vec![0f64; width];
        for row in rows {
            for (d, &v) in row.iter().enumerate() {
                mean[d] += f64::from(v);
                square[d] += f64::from(v) * f64::from(v);
            }
        }
        let mean: Vec<f64> = mean.into_iter().map(|m| m / n).collect();
        let inv_std = square
            .into_iter()
            .zip(&mean)
            .map(|(s, m)| {
                let std = (s / n - m * m).max(0.0).sqrt();
                // A constant dimension carries nothing; 1e-3 keeps it from blowing up.
                (1.0 / std.max(1e-3)) as f32
            })
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            inv_std,
        }
    }

    pub fn apply(&self, row: &[f32], out: &mut Vec<f32>) {
        out.extend(
            row.iter()
                .zip(self.mean.iter().zip(&self.inv_std))
                .map(|(v, (m, s))| (v - m) * s),
        );
    }
}

/// How the head is trained.
#[derive(Config, Debug)]
pub struct HeadTrainConfig {
    #[config(default = 40)]
    pub epochs: usize,
    #[config(default = 256)]
    pub batch_size: usize,
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    /// The largest weight a label's positives get against its negatives.
    #[config(default = 20.0)]
    pub max_positive_weight: f32,
    #[config(default = 7)]
    pub seed: u64,
}

/// Trains a head on `patches` (those that only graze an event are left out) and returns it
/// with the standardisation it expects and the final epoch's mean loss.
pub fn train(
    model: &EventHeadConfig,
    config: &HeadTrainConfig,
    patches: &[&Patch],
    device: &Device,
) -> Result<(EventHead, Standardizer, f64), EventHeadError> {
    let usable: Vec<&Patch> = patches.iter().copied().filter(|p| !p.partial).collect();
    let standardizer = Standardizer::fit(
        &usable
            .iter()
            .map(|p| p.embedding.as_slice())
            .collect::<Vec<_>>(),
    );
    let labels = model.labels;
    let mut positives = vec![0usize; labels];
    for p in &usable {
        if let Some(l) = p.label {
            positives[l] += 1;
        }
    }
    if let Some(missing) = positives.iter().position(|&n| n == 0) {
        return Err(EventHeadError::Config(format!(
            "label {missing} has no training patch: every label needs marked events in the \
             training part"
        )));
    }
    let weights: Vec<f32> = positives
        .iter()
        .map(|&n| {
            let negatives = (usable.len() - n) as f32;
            (negatives / n as f32).clamp(1.0, config.max_positive_weight)
        })
        .collect();
    device.seed(config.seed);
    let mut head = model.init(device);
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay)))
        .init();
    let mut rng = SplitMix64::new(config.seed);
    let mut order: Vec<usize> = (0..usable.len()).collect();
    let weight_row =
        Tensor::<1>::from_data(TensorData::new(weights, [labels]), device).reshape([1, labels]);
    let mut last = f64::NAN;
    for epoch in 1..=config.epochs {
        rng.shuffle(&mut order);
        let (mut sum, mut batches) = (0.0, 0);
        for batch in order.chunks(config.batch_size) {
            let mut x = Vec::with_capacity(batch.len() * model.inputs);
            let mut y = vec![0f32; batch.len() * labels];
            for (row, &i) in batch.iter().enumerate() {
                standardizer.apply(&usable[i].embedding, &mut x);
                if let Some(l) = usable[i].label {
                    y[row * labels + l] = 1.0;
                }
            }
            let x = Tensor::<2>::from_data(TensorData::new(x, [batch.len(), model.inputs]), device);
            let y = Tensor::<2>::from_data(TensorData::new(y, [batch.len(), labels]), device);
            let z = head.forward(x);
            // Weighted logistic loss, stable: softplus(z) − y·z, positives scaled.
            let softplus_neg = softplus(z.clone().neg());
            let softplus_pos = softplus(z);
            let per =
                y.clone() * weight_row.clone() * softplus_neg + (y.neg() + 1.0) * softplus_pos;
            let loss = per.mean().reshape([1]);
            let value = scalar(&loss)?;
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch, loss: value }.into());
            }
            sum += value;
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optimizer.step(config.learning_rate, head, grads);
        }
        last = sum / batches.max(1) as f64;
        log::info!("head epoch {epoch}/{}: loss {last:.4}", config.epochs);
    }
    Ok((head, standardizer, last))
}

/// log(1 + eˣ) without overflow.
fn softplus(x: Tensor<2>) -> Tensor<2> {
    x.clone().clamp_min(0.0) + (x.abs().neg().exp() + 1.0).log()
}

/// The head's logits for `embeddings` rows (inference, no autodiff).
pub fn logits(
    head: &EventHead,
    standardizer: &Standardizer,
    embeddings: &[f32],
    inputs: usize,
    device: &Device,
) -> Result<Vec<f32>, EventHeadError> {
    let rows = embeddings.len() / inputs;
    let mut x = Vec::with_capacity(embeddings.len());
    for row in embeddings.chunks(inputs) {
        standardizer.apply(row, &mut x);
    }
    let x = Tensor::<2>::from_data(TensorData::new(x, [rows, inputs]), device);
    head.forward(x)
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|err| EventHeadError::Config(format!("head output: {err:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::parity::{plan, run_plan_outputs};

    /// Two labels, each lighting up its own block of embedding dimensions; background patches
    /// light neither. The trained head separates them, and its graph computes what burn does.
    #[test]
    fn a_head_learns_separable_labels_and_exports_what_it_computes() {
        let inputs = 16;
        let mut rng = SplitMix64::new(3);
        let patches: Vec<Patch> = (0..300)
            .map(|i| {
                let label = match i % 6 {
                    0 => Some(0),
                    1 => Some(1),
                    _ => None,
                };
                let embedding = (0..inputs)
                    .map(|d| {
                        let lit = match label {
                            Some(0) => d < 4,
                            Some(1) => (4..8).contains(&d),
                            _ => false,
                        };
                        (rng.uniform() as f32) * 0.3 + if lit { 1.0 } else { 0.0 }
                    })
                    .collect();
                Patch {
                    start: 0.0,
                    end: 0.96,
                    scores: Vec::new(),
                    embedding,
                    label,
                    partial: false,
                }
            })
            .collect();
        let refs: Vec<&Patch> = patches.iter().collect();
        let device = Device::flex().autodiff();
        let model = EventHeadConfig::new(inputs, 2);
        let config = HeadTrainConfig::new()
            .with_epochs(60)
            .with_batch_size(64)
            .with_learning_rate(1e-2);
        let (head, standardizer, loss) = train(&model, &config, &refs, &device).unwrap();
        assert!(loss < 0.2, "loss {loss}");
        let graph = plan(&head.export(inputs, &standardizer).unwrap()).unwrap();
        let device = Device::flex();
        let head = head.valid();
        for p in patches.iter().take(12) {
            let burn = logits(&head, &standardizer, &p.embedding, inputs, &device).unwrap();
            let tract = run_plan_outputs(&graph, &[1, inputs], &p.embedding).unwrap();
            for (a, b) in burn.iter().zip(&tract[0]) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            let predicted = burn
                .iter()
                .enumerate()
                .filter(|(_, z)| **z > 0.0)
                .map(|(j, _)| j)
                .collect::<Vec<_>>();
            assert_eq!(
                predicted,
                p.label.into_iter().collect::<Vec<_>>(),
                "{burn:?}"
            );
        }
        // A label without training patches is refused by name.
        let background: Vec<&Patch> = patches.iter().filter(|p| p.label != Some(1)).collect();
        let err = train(&model, &config, &background, &Device::flex().autodiff()).unwrap_err();
        assert!(
            err.to_string().contains("label 1 has no training patch"),
            "{err}"
        );
    }
}
