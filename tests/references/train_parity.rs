//! burn ↔ tract parity of the ONNX exporter, per layer type and for a whole model.
//!
//! Each case runs the burn module (inference mode) and tract's optimized plan of the exported
//! graph on the same random input and requires agreement to 1e-4, as the training issue asks.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::norm::BatchNormConfig;
use burn::nn::{Gelu, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::Distribution;

use vigil::train::nn::{LayerNormConfig, TransformerBlockConfig};
use vigil::train::onnx::{ExportOnnx, OnnxGraph};
use vigil::train::parity::{Parity, compare_values};
use vigil::train::toy::ToyNetConfig;

const TOLERANCE: f32 = 1e-4;

fn device() -> Device {
    let device = Device::flex();
    device.seed(7);
    device
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn values<const D: usize>(tensor: &Tensor<D>) -> Vec<f32> {
    tensor
        .to_data()
        .try_into_vec_as::<f32>()
        .expect("f32 tensor")
}

/// Exports `module` on an input of `shape`, runs both sides and checks parity.
fn check<M: ExportOnnx, const D: usize, const E: usize>(
    module: &M,
    forward: impl Fn(Tensor<D>) -> Tensor<E>,
    shape: [usize; D],
) -> Parity {
    let device = device();
    let input = random(shape, &device);
    let mut graph = OnnxGraph::new("layer");
    let x = graph.input("x", &shape).expect("input");
    let y = module.export_onnx(&mut graph, &x, "layer").expect("export");
    graph.output(&y, "y").expect("output");
    let model = graph.finish();
    let parity = compare_values(
        forward(input.clone()),
        &model,
        &shape,
        &values(&input),
        TOLERANCE,
    );
    match parity {
        Ok(parity) => {
            assert!(
                parity.max_abs_value > 0.0,
                "an all-zero output proves nothing"
            );
            parity
        }
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn linear_on_tokens() {
    let device = device();
    let linear = LinearConfig::new(12, 7).init(&device);
    check(&linear, |x| linear.forward(x), [2, 5, 12]);
    let no_bias = LinearConfig::new(12, 3).with_bias(false).init(&device);
    check(&no_bias, |x| no_bias.forward(x), [4, 12]);
}

#[test]
fn conv2d_paddings_strides_groups_dilation() {
    let device = device();
    let cases = [
        Conv2dConfig::new([3, 8], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        Conv2dConfig::new([3, 8], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        Conv2dConfig::new([3, 4], [5, 3]).with_padding(PaddingConfig2d::Valid),
        Conv2dConfig::new([3, 4], [3, 3]).with_padding(PaddingConfig2d::Same),
        Conv2dConfig::new([6, 6], [3, 3])
            .with_groups(6)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        Conv2dConfig::new([6, 4], [3, 3])
            .with_groups(2)
            .with_dilation([2, 2])
            .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2)),
        Conv2dConfig::new([3, 4], [1, 1]).with_bias(false),
    ];
    for config in cases {
        let conv = config.init(&device);
        let channels = conv.weight.dims()[1] * conv.groups;
        check(&conv, |x| conv.forward(x), [2, channels, 11, 10]);
    }
}

#[test]
fn batch_norm_uses_running_statistics() {
    let training = device().autodiff();
    let mut norm = BatchNormConfig::new(5).init(&training);
    // Move the running statistics away from (0, 1) so the export must carry them.
    for _ in 0..20 {
        let batch = random([8, 5, 4, 4], &training)
            .mul_scalar(3.0)
            .add_scalar(2.0);
        let _ = norm.forward(batch);
    }
    norm = norm.valid();
    let mean = values(&norm.running_mean.value());
    assert!(
        mean.iter().all(|m| *m > 0.5),
        "running mean did not move: {mean:?}"
    );
    check(&norm, |x| norm.forward(x), [2, 5, 6, 6]);
}

#[test]
fn activations_relu_and_both_gelus() {
    check(&Relu::new(), |x| Relu::new().forward(x), [3, 17]);
    let exact = Gelu::new();
    check(&exact, |x| exact.forward(x), [3, 17]);
    let tanh = Gelu { approximate: true };
    check(&tanh, |x| tanh.forward(x), [3, 17]);
}

#[test]
fn layer_norm_transformer_block_and_attention() {
    let device = device();
    let norm = LayerNormConfig::new(16).init(&device);
    check(&norm, |x| norm.forward(x), [2, 9, 16]);
    let block = TransformerBlockConfig::new(16, 4).init(&device);
    check(
        &block.attention,
        |x| {
            block
                .attention
                .forward(burn::nn::attention::MhaInput::self_attn(x))
                .context
        },
        [2, 9, 16],
    );
    check(&block, |x| block.forward(x), [2, 9, 16]);
}

#[test]
fn whole_toy_network() {
    let device = device();
    let net = ToyNetConfig::new().init(&device);
    let input = random([2, 1, 16, 16], &device);
    let model = net.to_onnx([2, 1, 16, 16]).expect("export");
    let parity = compare_values(
        net.probabilities(input.clone()),
        &model,
        &[2, 1, 16, 16],
        &values(&input),
        TOLERANCE,
    );
    assert!(parity.is_ok(), "{parity:?}");
}

#[test]
fn a_wrong_input_shape_is_an_export_error_not_a_panic() {
    let device = device();
    let conv = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
    let mut graph = OnnxGraph::new("bad");
    let x = graph.input("x", &[1, 4, 8, 8]).expect("input");
    let err = conv
        .export_onnx(&mut graph, &x, "conv")
        .err()
        .map(|e| e.to_string());
    assert!(
        err.is_some_and(|e| e.contains("3 input channels")),
        "conv accepted 4 channels"
    );
    let linear = LinearConfig::new(12, 7).init(&device);
    let x = graph.input("x2", &[1, 5]).expect("input");
    assert!(linear.export_onnx(&mut graph, &x, "linear").is_err());
    let x = graph.input("x", &[1, 12]).err().map(|e| e.to_string());
    assert!(
        x.is_some_and(|e| e.contains("\"x\"")),
        "duplicate names must be refused"
    );
}

#[test]
fn a_broken_graph_fails_parity() {
    // The check must be able to fail: export a Linear, then compare against a different one.
    let device = device();
    let exported = LinearConfig::new(6, 4).init(&device);
    let other = LinearConfig::new(6, 4).init(&device);
    let mut graph = OnnxGraph::new("layer");
    let x = graph.input("x", &[3, 6]).expect("input");
    let y = exported.export_onnx(&mut graph, &x, "l").expect("export");
    graph.output(&y, "y").expect("output");
    let input = random([3, 6], &device);
    let result = compare_values(
        other.forward(input.clone()),
        &graph.finish(),
        &[3, 6],
        &values(&input),
        TOLERANCE,
    );
    assert!(result.is_err());
}
