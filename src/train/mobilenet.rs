//! MobileNetV2 (Sandler et al. 2018) in burn, loadable from torchvision's ImageNet weights and
//! exportable to ONNX: the pretrained backbone the families can start from.
//!
//! The layer layout follows torchvision's `mobilenet_v2` exactly (so its state-dict keys map one
//! to one): a 3×3 stride-2 stem, seventeen inverted residual blocks from the
//! (expansion, channels, repeats, stride) table below, a 1×1 conv to 1280 channels, global
//! average pooling and a 1000-way linear classifier. Every conv is followed by batch norm
//! (eps 1e-5); ReLU6 follows all but each block's projection.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::norm::{BatchNorm, BatchNormConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::onnx::{ExportError, ExportOnnx, ModelProto, OnnxGraph, Value};
use super::pytorch::StateDict;

/// (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
const BLOCKS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// ImageNet normalisation torchvision's weights expect (RGB, after scaling to [0, 1]).
pub use crate::prepare::imagenet::{IMAGENET_MEAN, IMAGENET_STD};

/// Conv → BatchNorm → optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvNorm {
    pub conv: Conv2d,
    pub norm: BatchNorm,
    pub relu6: bool,
}

impl ConvNorm {
    fn new(
        device: &Device,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
    ) -> Self {
        let pad = (kernel - 1) / 2;
        Self {
            conv: Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(channels[1])
                .with_epsilon(1e-5)
                .init(device),
            relu6,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.norm.forward(self.conv.forward(x));
        if self.relu6 { y.clamp(0.0, 6.0) } else { y }
    }

    /// Loads `<prefix>.{conv}` and `<prefix>.{norm}` weights from a state dict.
    fn load(
        mut self,
        weights: &StateDict,
        conv: &str,
        norm: &str,
        device: &Device,
    ) -> Result<Self, ExportError> {
        self.conv.weight = Param::from_tensor(tensor(
            weights,
            &format!("{conv}.weight"),
            self.conv.weight.dims(),
            device,
        )?);
        let [c] = self.norm.gamma.dims();
        self.norm.gamma =
            Param::from_tensor(tensor(weights, &format!("{norm}.weight"), [c], device)?);
        self.norm.beta = Param::from_tensor(tensor(weights, &format!("{norm}.bias"), [c], device)?);
        self.norm.running_mean = RunningState::new(tensor(
            weights,
            &format!("{norm}.running_mean"),
            [c],
            device,
        )?);
        self.norm.running_var = RunningState::new(tensor(
            weights,
            &format!("{norm}.running_var"),
            [c],
            device,
        )?);
        Ok(self)
    }
}

impl ExportOnnx for ConvNorm {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let y = self
            .conv
            .export_onnx(graph, input, &format!("{scope}.conv"))?;
        let y = self.norm.export_onnx(graph, &y, &format!("{scope}.norm"))?;
        if !self.relu6 {
            return Ok(y);
        }
        let low = graph.constant_f32(&format!("{scope}.relu6_min"), &[], &[0.0])?;
        let high = graph.constant_f32(&format!("{scope}.relu6_max"), &[], &[6.0])?;
        let shape = y.shape.clone();
        graph.node("Clip", &[&y, &low, &high], &[], &shape)
    }
}

/// An inverted residual block: 1×1 expansion (absent when t = 1), 3×3 depthwise, 1×1 linear
/// projection; the input is added back when the shape is unchanged.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvNorm>,
    pub depthwise: ConvNorm,
    pub project: ConvNorm,
    pub residual: bool,
}

impl InvertedResidual {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y);
        }
        let y = self.project.forward(self.depthwise.forward(y));
        if self.residual { x + y } else { y }
    }
}

impl ExportOnnx for InvertedResidual {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let mut y = input.clone();
        if let Some(expand) = &self.expand {
            y = expand.export_onnx(graph, &y, &format!("{scope}.expand"))?;
        }
        let y = self
            .depthwise
            .export_onnx(graph, &y, &format!("{scope}.depthwise"))?;
        let y = self
            .project
            .export_onnx(graph, &y, &format!("{scope}.project"))?;
        if self.residual {
            graph.add(input, &y)
        } else {
            Ok(y)
        }
    }
}

/// MobileNetV2 for 1000 ImageNet classes (width multiplier 1.0).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    pub stem: ConvNorm,
    pub blocks: Vec<InvertedResidual>,
    pub head: ConvNorm,
    pub classifier: Linear,
}

impl MobileNetV2 {
    /// Randomly initialised network.
    pub fn new(device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut channels = 32;
        for (expansion, out, repeats, first_stride) in BLOCKS {
            for repeat in 0..repeats {
                let stride = if repeat == 0 { first_stride } else { 1 };
                let hidden = channels * expansion;
                blocks.push(InvertedResidual {
                    expand: (expansion != 1)
                        .then(|| ConvNorm::new(device, [channels, hidden], 1, 1, 1, true)),
                    depthwise: ConvNorm::new(device, [hidden, hidden], 3, stride, hidden, true),
                    project: ConvNorm::new(device, [hidden, out], 1, 1, 1, false),
                    residual: stride == 1 && channels == out,
                });
                channels = out;
            }
        }
        Self {
            stem: ConvNorm::new(device, [3, 32], 3, 2, 1, true),
            blocks,
            head: ConvNorm::new(device, [channels, 1280], 1, 1, 1, true),
            classifier: LinearConfig::new(1280, 1000).init(device),
        }
    }

    /// torchvision's ImageNet weights (`mobilenet_v2-b0353104.pth`) loaded into the network.
    /// Every key the network needs must be there with its shape; keys left over are an error
    /// too, so a checkpoint of another architecture is never half-loaded.
    pub fn from_torchvision(weights: &StateDict, device: &Device) -> Result<Self, ExportError> {
        let mut net = Self::new(device);
        net.stem = net
            .stem
            .load(weights, "features.0.0", "features.0.1", device)?;
        let mut blocks = Vec::with_capacity(net.blocks.len());
        for (index, block) in net.blocks.into_iter().enumerate() {
            let prefix = format!("features.{}.conv", index + 1);
            let (expand, offset) = match block.expand {
                Some(expand) => (
                    Some(expand.load(
                        weights,
                        &format!("{prefix}.0.0"),
                        &format!("{prefix}.0.1"),
                        device,
                    )?),
                    1,
                ),
                None => (None, 0),
            };
            let depthwise = block.depthwise.load(
                weights,
                &format!("{prefix}.{offset}.0"),
                &format!("{prefix}.{offset}.1"),
                device,
            )?;
            let project = block.project.load(
                weights,
                &format!("{prefix}.{}", offset + 1),
                &format!("{prefix}.{}", offset + 2),
                device,
            )?;
            blocks.push(InvertedResidual {
                expand,
                depthwise,
                project,
                residual: block.residual,
            });
        }
        net.blocks = blocks;
        let head = format!("features.{}", net.blocks.len() + 1);
        net.head = net
            .head
            .load(weights, &format!("{head}.0"), &format!("{head}.1"), device)?;
        // torchvision stores the classifier as [out, in]; burn's Linear is [in, out].
        let classifier = tensor(weights, "classifier.1.weight", [1000, 1280], device)?;
        net.classifier.weight = Param::from_tensor(classifier.transpose());
        net.classifier.bias = Some(Param::from_tensor(tensor(
            weights,
            "classifier.1.bias",
            [1000],
            device,
        )?));
        // 5 tensors per conv + norm, plus the classifier's 2; torchvision's batch norms also
        // carry a `num_batches_tracked` counter each, which inference ignores.
        let conv_norms = 2 + net
            .blocks
            .iter()
            .map(|b| 2 + usize::from(b.expand.is_some()))
            .sum::<usize>();
        let expected = [5 * conv_norms + 2, 6 * conv_norms + 2];
        if !expected.contains(&weights.len()) {
            return Err(ExportError::Weights {
                name: "state dict".into(),
                reason: format!(
                    "{} tensors, torchvision's MobileNetV2 has {} (or {} without the batch-norm counters): another architecture?",
                    weights.len(),
                    expected[1],
                    expected[0]
                ),
            });
        }
        Ok(net)
    }

    /// Logits `[batch, 1000]` for normalised images `[batch, 3, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(self.pooled_features(images))
    }

    /// The globally averaged last-convolution features `[batch, 1280]`.
    pub fn pooled_features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.head.forward(x);
        x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3)
    }

    pub fn probabilities(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(images), 1)
    }

    /// The ONNX graph of [`Self::probabilities`] for a fixed input shape.
    pub fn to_onnx(&self, input_shape: [usize; 4]) -> Result<ModelProto, ExportError> {
        let mut graph = OnnxGraph::new("mobilenet_v2");
        let pooled = self.export_pooled(&mut graph, input_shape)?;
        let logits = self
            .classifier
            .export_onnx(&mut graph, &pooled, "classifier")?;
        let probabilities = graph.softmax(&logits, 1)?;
        graph.output(&probabilities, "probabilities")?;
        Ok(graph.finish())
    }

    /// The feature extractor: the 1280 channels of the last convolution averaged over the
    /// image (`features`, `[batch, 1280]`), the representation ImageNet's classifier reads.
    pub fn to_features_onnx(&self, input_shape: [usize; 4]) -> Result<ModelProto, ExportError> {
        let mut graph = OnnxGraph::new("mobilenet_v2_features");
        let pooled = self.export_pooled(&mut graph, input_shape)?;
        graph.output(&pooled, "features")?;
        Ok(graph.finish())
    }

    fn export_pooled(
        &self,
        graph: &mut OnnxGraph,
        input_shape: [usize; 4],
    ) -> Result<super::onnx::Value, ExportError> {
        let input = graph.input("image", &input_shape)?;
        let mut x = self.stem.export_onnx(graph, &input, "stem")?;
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.export_onnx(graph, &x, &format!("blocks.{index}"))?;
        }
        let x = self.head.export_onnx(graph, &x, "head")?;
        let [batch, channels] = [x.shape[0], x.shape[1]];
        let pooled = graph.node("GlobalAveragePool", &[&x], &[], &[batch, channels, 1, 1])?;
        graph.reshape(&pooled, &[batch, channels])
    }
}

/// A point of the network a feature map is read at: the output of inverted-residual block
/// `block`, or (`expanded`) that block's 1×1 expansion (after its ReLU6), the wider map the
/// block's depthwise convolution reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tap {
    pub block: usize,
    pub expanded: bool,
}

impl Tap {
    pub const fn output(block: usize) -> Self {
        Self {
            block,
            expanded: false,
        }
    }

    pub const fn expansion(block: usize) -> Self {
        Self {
            block,
            expanded: true,
        }
    }

    /// The graph output's name, after torchvision's module `features.<block + 1>`.
    pub fn name(self) -> String {
        if self.expanded {
            format!("features_{}_expand", self.block + 1)
        } else {
            format!("features_{}", self.block + 1)
        }
    }

    /// Where the tap comes in the forward pass: a block's expansion before its output.
    fn order(self) -> (usize, bool) {
        (self.block, !self.expanded)
    }
}

impl std::str::FromStr for Tap {
    type Err = String;

    /// `5` is block 5's output, `6e` block 6's expansion.
    fn from_str(text: &str) -> Result<Self, String> {
        let (digits, expanded) = match text.strip_suffix('e') {
            Some(digits) => (digits, true),
            None => (text, false),
        };
        let block = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a block index, optionally followed by e"))?;
        Ok(Self { block, expanded })
    }
}

/// Where PatchCore's features are read by default: torchvision's `features.6` (32 channels at
/// stride 8, the end of the stride-8 stage) and `features.13` (96 channels at stride 16, the
/// end of the stride-16 stage): the two mid-level stages, as PatchCore takes a ResNet's
/// `layer2` and `layer3`.
pub const PATCH_TAPS: [Tap; 2] = [Tap::output(5), Tap::output(12)];

impl MobileNetV2 {
    /// Checks that `taps` are in forward order and inside the network; a block with no
    /// expansion has no expansion tap.
    fn check_taps(&self, taps: &[Tap]) -> Result<usize, ExportError> {
        let ordered = taps
            .windows(2)
            .all(|pair| pair[0].order() < pair[1].order());
        let valid = taps.iter().all(|tap| {
            self.blocks
                .get(tap.block)
                .is_some_and(|block| !tap.expanded || block.expand.is_some())
        });
        match taps.last() {
            Some(last) if ordered && valid => Ok(last.block),
            _ => Err(ExportError::Weights {
                name: "taps".into(),
                reason: format!(
                    "{taps:?}: taps must be in forward order, below block {}, and expansions only of blocks that have one",
                    self.blocks.len()
                ),
            }),
        }
    }

    /// The feature maps at `taps` for normalised images, in order.
    pub fn tap_outputs(
        &self,
        images: Tensor<4>,
        taps: &[Tap],
    ) -> Result<Vec<Tensor<4>>, ExportError> {
        let last = self.check_taps(taps)?;
        let mut x = self.stem.forward(images);
        let mut outputs = Vec::with_capacity(taps.len());
        for (index, block) in self.blocks.iter().enumerate().take(last + 1) {
            if let Some(expand) = &block.expand
                && taps.contains(&Tap::expansion(index))
            {
                outputs.push(expand.forward(x.clone()));
            }
            x = block.forward(x);
            if taps.contains(&Tap::output(index)) {
                outputs.push(x.clone());
            }
        }
        Ok(outputs)
    }

    /// The backbone up to the last of `taps`, as an ONNX graph with one output per tap
    /// ([`Tap::name`]) for a fixed input shape: what PatchCore runs on tract.
    pub fn to_taps_onnx(
        &self,
        input_shape: [usize; 4],
        taps: &[Tap],
    ) -> Result<ModelProto, ExportError> {
        let last = self.check_taps(taps)?;
        let mut graph = OnnxGraph::new("mobilenet_v2_patch_features");
        let input = graph.input("image", &input_shape)?;
        let mut x = self.stem.export_onnx(&mut graph, &input, "stem")?;
        for (index, block) in self.blocks.iter().enumerate().take(last + 1) {
            let scope = format!("blocks.{index}");
            let tap = Tap::expansion(index);
            x = match &block.expand {
                // The block written out so that its expansion is both a tap and the depthwise
                // convolution's input, computed once.
                Some(expand) if taps.contains(&tap) => {
                    let expanded =
                        expand.export_onnx(&mut graph, &x, &format!("{scope}.expand"))?;
                    graph.output(&expanded, &tap.name())?;
                    let y = block.depthwise.export_onnx(
                        &mut graph,
                        &expanded,
                        &format!("{scope}.depthwise"),
                    )?;
                    let y =
                        block
                            .project
                            .export_onnx(&mut graph, &y, &format!("{scope}.project"))?;
                    if block.residual {
                        graph.add(&x, &y)?
                    } else {
                        y
                    }
                }
                _ => block.export_onnx(&mut graph, &x, &scope)?,
            };
            let tap = Tap::output(index);
            if taps.contains(&tap) {
                graph.output(&x, &tap.name())?;
            }
        }
        Ok(graph.finish())
    }
}

/// A state-dict tensor as a burn tensor of the expected shape; a missing key or another shape
/// is an error naming the key.
fn tensor<const D: usize>(
    weights: &StateDict,
    key: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Tensor<D>, ExportError> {
    let found = weights.get(key).ok_or_else(|| ExportError::Weights {
        name: key.into(),
        reason: "missing from the state dict".into(),
    })?;
    if found.shape != shape {
        return Err(ExportError::Weights {
            name: key.into(),
            reason: format!("shape {:?}, expected {shape:?}", found.shape),
        });
    }
    Ok(Tensor::from_data(
        TensorData::new(found.data.clone(), shape),
        device,
    ))
}

/// torchvision's evaluation preprocessing on an RGB8 image: resize the shorter side to 256
/// (bilinear), centre-crop 224, scale to [0, 1], normalise. Returns `[1, 3, 224, 224]` values.
pub fn preprocess(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    let scale = 256.0 / width.min(height) as f64;
    let (new_w, new_h) = (
        ((width as f64 * scale).round() as usize).max(224),
        ((height as f64 * scale).round() as usize).max(224),
    );
    let (left, top) = ((new_w - 224) / 2, (new_h - 224) / 2);
    let mut out = vec![0.0f32; 3 * 224 * 224];
    for y in 0..224 {
        // Pixel centres map through the scale (align_corners = false).
        let sy = (((top + y) as f64 + 0.5) / scale - 0.5).clamp(0.0, (height - 1) as f64);
        let (y0, fy) = (sy.floor() as usize, sy - sy.floor());
        let y1 = (y0 + 1).min(height - 1);
        for x in 0..224 {
            let sx = (((left + x) as f64 + 0.5) / scale - 0.5).clamp(0.0, (width - 1) as f64);
            let (x0, fx) = (sx.floor() as usize, sx - sx.floor());
            let x1 = (x0 + 1).min(width - 1);
            for c in 0..3 {
                let at = |yy: usize, xx: usize| f64::from(rgb[(yy * width + xx) * 3 + c]);
                let top_row = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom_row = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                let value = (top_row * (1.0 - fy) + bottom_row * fy) / 255.0;
                out[c * 224 * 224 + y * 224 + x] =
                    ((value as f32) - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
    }
    out
}

/// What `convert` wrote and checked.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub record: std::path::PathBuf,
    pub onnx: std::path::PathBuf,
    pub parity: super::parity::Parity,
    /// The feature extractor (`mobilenet_v2_features.onnx`, pooled 1280-d output) and its
    /// largest difference from burn relative to the largest feature.
    pub features_onnx: std::path::PathBuf,
    pub features_relative: f32,
}

/// Converts torchvision's `.pth` into a burn record (`mobilenet_v2.bpk`) and an ONNX graph
/// (`mobilenet_v2.onnx`, input `[1, 3, 224, 224]`, softmax output) in `out`, checking burn
/// against tract on `probe` (a preprocessed image) to 1e-4.
pub fn convert(
    weights: &std::path::Path,
    out: &std::path::Path,
    probe: &[f32],
) -> Result<Conversion, super::TrainError> {
    let state = super::pytorch::read_state_dict(weights)?;
    let device = Device::flex();
    let net = MobileNetV2::from_torchvision(&state, &device)?;
    std::fs::create_dir_all(out)
        .map_err(|e| super::TrainError::Config(format!("cannot create {}: {e}", out.display())))?;
    let shape = [1, 3, 224, 224];
    let model = net.to_onnx(shape)?;
    let input = Tensor::<4>::from_data(TensorData::new(probe.to_vec(), shape), &device);
    let parity =
        super::parity::compare_values(net.probabilities(input), &model, &shape, probe, 1e-4)?;
    let onnx = out.join("mobilenet_v2.onnx");
    super::onnx::save(&model, &onnx)?;
    let features_model = net.to_features_onnx(shape)?;
    let input = Tensor::<4>::from_data(TensorData::new(probe.to_vec(), shape), &device);
    let burn_features = super::onnx::tensor_values(net.pooled_features(input), "features")?;
    let (_, tract_features) = super::parity::run_tract(&features_model, &shape, probe)?;
    let features_relative = super::parity::relative_difference(&burn_features, &tract_features)?;
    if features_relative > 1e-4 {
        return Err(super::parity::ParityError::Mismatch {
            max_abs_diff: features_relative,
            index: 0,
            tolerance: 1e-4,
        }
        .into());
    }
    let features_onnx = out.join("mobilenet_v2_features.onnx");
    super::onnx::save(&features_model, &features_onnx)?;
    let record = out.join("mobilenet_v2.bpk");
    net.save_file(&record)
        .map_err(|e| super::TrainError::Checkpoint(format!("{}: {e}", record.display())))?;
    Ok(Conversion {
        record,
        onnx,
        parity,
        features_onnx,
        features_relative,
    })
}

/// The `k` most probable classes, most probable first.
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}
