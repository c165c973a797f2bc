"""fp32 ONNX graphs for the int8 study, built with onnx.helper.

Three shapes of work vigil cares about, plus the minimal Softmax repro:
  convnet  - a MobileNetV2-like stack (3x3 stem, inverted residual blocks: 1x1 expand,
             3x3 depthwise, 1x1 project, residual Add), global pool and a Gemm head.
  mlp      - token MLP, MatMul 192->768 -> Gelu(erf) -> MatMul 768->192 on [1,197,192],
             and a Gemm form on [64,512].
  vit      - one ViT-Tiny encoder block, 197 tokens x 192 dims, 3 heads (pre-LN, erf Gelu),
             the way MAE / timm export it (MatMul+Add linears, QK^T, Softmax, PV).
  softmax5 - x -> Q -> DQ -> Softmax -> Q -> DQ: the five-node graph that shows what tract
             does to a quantized Softmax.

Weights are random but scaled like trained ones (He / Xavier), inputs are smooth images or
LayerNorm-ish token activations, so activation ranges look like a real network's.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization needs 17; tract-onnx and onnxruntime both handle it.


class G:
    """Tiny graph builder: keeps nodes and initializers, hands out unique names."""

    def __init__(self, seed):
        self.nodes, self.inits, self.n = [], [], 0
        self.rng = np.random.default_rng(seed)

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, array):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, base=None, **attrs):
        out = self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def model(self, inputs, outputs):
        graph = helper.make_graph(self.nodes, "g", inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m

    # layers -------------------------------------------------------------------------------
    def conv(self, x, cin, cout, k, stride=1, group=1, relu=True):
        fan_in = cin // group * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // group, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.05, cout).astype(np.float32)
        y = self.op("Conv", [x, self.const("w", w), self.const("b", b)], "conv",
                    kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)
        return self.op("Relu", [y]) if relu else y

    def linear(self, x, din, dout, gain=1.0, col_scale=None):
        w = self.rng.normal(0, gain * np.sqrt(2.0 / (din + dout)), (din, dout)).astype(np.float32)
        b = self.rng.normal(0, 0.02, dout).astype(np.float32)
        if col_scale is not None:  # fold a per-output-column factor into the weights
            w, b = (w * col_scale).astype(np.float32), (b * col_scale).astype(np.float32)
        y = self.op("MatMul", [x, self.const("w", w)], "matmul")
        return self.op("Add", [y, self.const("b", b)], "bias")

    def gelu(self, x):
        # erf form, as torch exports nn.GELU() below opset 20
        h = self.op("Div", [x, self.const("sqrt2", np.float32(np.sqrt(2.0)))])
        h = self.op("Erf", [h])
        h = self.op("Add", [h, self.const("one", np.float32(1.0))])
        h = self.op("Mul", [x, h])
        return self.op("Mul", [h, self.const("half", np.float32(0.5))])

    def layernorm(self, x, d):
        g = (1.0 + self.rng.normal(0, 0.1, d)).astype(np.float32)
        b = self.rng.normal(0, 0.1, d).astype(np.float32)
        return self.op("LayerNormalization", [x, self.const("ln_g", g), self.const("ln_b", b)],
                       "ln", axis=-1, epsilon=1e-6)


def vinfo(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def convnet(size=160):
    """MobileNetV2-like: stem, 6 inverted residual blocks, 1x1 to 256, pool, Gemm head."""
    g = G(1)
    x = g.conv("x", 3, 32, 3, stride=2)
    cin = 32
    # (expansion, out channels, stride): strides bring 80x80 down to 10x10
    for t, cout, s in [(1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1), (4, 64, 2)]:
        h = g.conv(x, cin, cin * t, 1) if t != 1 else x
        h = g.conv(h, cin * t, cin * t, 3, stride=s, group=cin * t)
        h = g.conv(h, cin * t, cout, 1, relu=False)
        x = g.op("Add", [x, h], "res") if (s == 1 and cin == cout) else h
        cin = cout
    x = g.conv(x, cin, 256, 1)
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    w = g.rng.normal(0, np.sqrt(1.0 / 256), (10, 256)).astype(np.float32)
    y = g.op("Gemm", [x, g.const("fc_w", w), g.const("fc_b", np.zeros(10, np.float32))], "fc", transB=1)
    m = g.model([vinfo("x", [1, 3, size, size])], [vinfo(y, [1, 10])])
    return m, {"x": smooth_images(1, size)}


def mlp():
    """ViT MLP on a token matrix: the MatMul form."""
    g = G(2)
    h = g.linear("x", 192, 768)
    h = g.gelu(h)
    y = g.linear(h, 768, 192)
    m = g.model([vinfo("x", [1, 197, 192])], [vinfo(y, [1, 197, 192])])
    return m, {"x": tokens(1, 197, 192)}


def gemm():
    """A 2-layer Gemm MLP on a batch of feature vectors: the Gemm form (transB=1, torch style)."""
    g = G(3)
    x = "x"
    for din, dout, relu in [(512, 1024, True), (1024, 512, False)]:
        w = g.rng.normal(0, np.sqrt(2.0 / din), (dout, din)).astype(np.float32)
        b = g.rng.normal(0, 0.02, dout).astype(np.float32)
        x = g.op("Gemm", [x, g.const("w", w), g.const("b", b)], "gemm", transB=1)
        if relu:
            x = g.op("Relu", [x])
    m = g.model([vinfo("x", [64, 512])], [vinfo(x, [64, 512])])
    return m, {"x": tokens(1, 64, 512)[0]}


def vit_block(tokens_n=197, dim=192, heads=3, attn_only=False, fold_scale=False):
    """One pre-LN ViT encoder block, exported the way timm/MAE models look in ONNX.
    attn_only stops at the attention output (before the projection), so that an attention
    error is not diluted by the residual stream."""
    g = G(4)
    hd = dim // heads
    x = "x"
    h = g.layernorm(x, dim)
    col_scale = None
    if fold_scale:
        col_scale = np.ones(3 * dim, np.float32)
        col_scale[:dim] = hd ** -0.5
    qkv = g.linear(h, dim, 3 * dim, col_scale=col_scale)
    qkv = g.op("Reshape", [qkv, g.const("shape", np.array([1, tokens_n, 3, heads, hd], np.int64))])
    qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # 3, B, H, T, hd
    q, k, v = (g.op("Gather", [qkv, g.const("i", np.array(i, np.int64))], n, axis=0)
               for i, n in enumerate("qkv"))
    kt = g.op("Transpose", [k], "kt", perm=[0, 1, 3, 2])
    att = g.op("MatMul", [q, kt], "qk")
    if not fold_scale:
        att = g.op("Mul", [att, g.const("scale", np.float32(hd ** -0.5))], "qk_scale")
    att = g.op("Softmax", [att], "softmax", axis=-1)
    o = g.op("MatMul", [att, v], "pv")
    o = g.op("Transpose", [o], perm=[0, 2, 1, 3])
    o = g.op("Reshape", [o, g.const("shape", np.array([1, tokens_n, dim], np.int64))])
    if attn_only:
        m = g.model([vinfo("x", [1, tokens_n, dim])], [vinfo(o, [1, tokens_n, dim])])
        return m, {"x": tokens(1, tokens_n, dim)}
    o = g.linear(o, dim, dim)
    x = g.op("Add", [x, o], "res1")
    h = g.layernorm(x, dim)
    h = g.linear(h, dim, 4 * dim)
    h = g.gelu(h)
    h = g.linear(h, 4 * dim, dim)
    y = g.op("Add", [x, h], "res2")
    m = g.model([vinfo("x", [1, tokens_n, dim])], [vinfo(y, [1, tokens_n, dim])])
    return m, {"x": tokens(1, tokens_n, dim)}


def softmax5(n=197):
    """x -> QuantizeLinear -> DequantizeLinear -> Softmax -> QuantizeLinear -> DequantizeLinear,
    with the scales onnxruntime's calibrator would pick (logits in [-8, 8], probs in [0, 1])."""
    g = G(5)
    s_in, s_out = np.float32(16 / 255), np.float32(1 / 255)
    zp_in, zp_out = np.uint8(128), np.uint8(0)
    q = g.op("QuantizeLinear", ["x", g.const("s", s_in), g.const("zp", zp_in)], "q_in")
    d = g.op("DequantizeLinear", [q, g.const("s", s_in), g.const("zp", zp_in)], "dq_in")
    p = g.op("Softmax", [d], "softmax", axis=-1)
    q = g.op("QuantizeLinear", [p, g.const("s", s_out), g.const("zp", zp_out)], "q_out")
    y = g.op("DequantizeLinear", [q, g.const("s", s_out), g.const("zp", zp_out)], "dq_out")
    m = g.model([vinfo("x", [1, 3, n, n])], [vinfo(y, [1, 3, n, n])])
    rng = np.random.default_rng(50)
    return m, {"x": (rng.normal(0, 2.0, (1, 3, n, n))).astype(np.float32)}


def softmax_fp32(n=197):
    """Reference for softmax5: the same Softmax without the Q/DQ pairs."""
    g = G(5)
    y = g.op("Softmax", ["x"], "softmax", axis=-1)
    m = g.model([vinfo("x", [1, 3, n, n])], [vinfo(y, [1, 3, n, n])])
    return m, softmax5(n)[1]


# inputs ------------------------------------------------------------------------------------
def smooth_images(n, size, seed=7):
    """Natural-image-like inputs: low-frequency noise upsampled, normalized like ImageNet."""
    rng = np.random.default_rng(seed)
    low = rng.normal(0, 1, (n, 3, size // 16, size // 16)).astype(np.float32)
    img = low.repeat(16, axis=2).repeat(16, axis=3)
    # a little blur across the block edges and some fine texture
    img = (img + np.roll(img, 8, axis=2) + np.roll(img, 8, axis=3)) / 3
    img += rng.normal(0, 0.2, img.shape).astype(np.float32)
    return img.astype(np.float32)


def tokens(n, t, d, seed=11):
    """Token activations: per-token LayerNorm-ish vectors plus a few outlier channels, like a
    trained ViT's residual stream."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, t, d)).astype(np.float32)
    x[..., :: max(1, d // 8)] *= 3.0
    return x


BUILDERS = {
    "convnet": convnet,
    "mlp": mlp,
    "gemm": gemm,
    "vit": vit_block,
    "attn": lambda: vit_block(attn_only=True),
    "attn_folded": lambda: vit_block(attn_only=True, fold_scale=True),
    "softmax5": softmax5,
    "softmax_fp32": softmax_fp32,
}
