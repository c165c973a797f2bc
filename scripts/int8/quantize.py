"""Every int8 form of a model that the study compares.

From onnxruntime.quantization:
  qdq_u8s8        quantize_static QDQ, u8 activations (asymmetric), s8 per-channel weights:
                  onnxruntime's recommended default.
  qdq_s8s8_sym    QDQ with s8 symmetric activations (zp = 0) and s8 symmetric per-channel weights.
  qop_all         quantize_static QOperator with the default op list: QLinearConv/QLinearMatMul,
                  and com.microsoft ops (QLinearAdd, QLinearGlobalAveragePool, ...) for the rest.
  qop_u8s8        QOperator limited to Conv/MatMul/Gemm (standard-domain ops only).
  qop_s8s8_sym    the same with s8 symmetric activations, zp = 0 everywhere.
  dyn_u8s8        quantize_dynamic: DynamicQuantizeLinear + MatMulInteger/ConvInteger.
By hand:
  int_s8_f32      x -> QuantizeLinear(s_x, zp=int8 0) -> MatMulInteger/ConvInteger(W int8,
                  per-channel, no zero points) -> Cast(float) -> Mul(s_x*s_w[c]) -> Add(bias):
                  int8 in, int32 accumulate, float out. No zero-point algebra, no requantize
                  to int8, and the rescale is an ordinary float Mul tract can fuse.
  int_s8_f32_rq   the same, with QuantizeLinear spelled Mul(1/s_x) -> Round -> Clip -> Cast(int8).
  int_s8_f32_rq_dwfp32 / _1x1only   (conv nets) depthwise convs / all but 1x1 convs left fp32.
For the ViT block each static form exists twice: with the attention MatMuls (QK^T, PV)
quantized, and "_attnfp32" where they are excluded (Softmax is never in the op list).
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)

import models


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def calibration_feeds(name, n=8):
    """Inputs from the same distribution as the test input, other seeds."""
    _, test = models.BUILDERS[name]()
    shape = test["x"].shape
    feeds = []
    for s in range(n):
        if name == "convnet":
            x = models.smooth_images(shape[0], shape[2], seed=100 + s)
        elif len(shape) == 3:
            x = models.tokens(*shape, seed=100 + s)
        else:
            x = models.tokens(1, *shape, seed=100 + s)[0]
        feeds.append({"x": x})
    return feeds


def attention_nodes(model):
    """QK^T, its scale, Softmax and PV. The Softmax and the scale Mul must be listed too:
    with the default op list, QDQ quantizes every op type in the graph, Softmax included,
    even when both MatMuls around it are excluded."""
    return [n.name for n in model.graph.node
            if n.name.startswith(("qk_", "pv_", "softmax_", "qk_scale_"))]


def static(name, fp32_path, out_path, fmt, act, sym, op_types=None, exclude=(), all_ops=False):
    extra = {"ActivationSymmetric": sym, "WeightSymmetric": True}
    kwargs = {} if all_ops else {"op_types_to_quantize": op_types or ["Conv", "MatMul", "Gemm"]}
    quantize_static(fp32_path, out_path, Reader(calibration_feeds(name)), quant_format=fmt,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=list(exclude), extra_options=extra, **kwargs)


def variants(name, fp32_path, out_dir):
    """Write every int8 form of `name`; returns [(variant, path)]."""
    m = onnx.load(fp32_path)
    attn = attention_nodes(m)
    out = []

    def add(v, fn):
        path = os.path.join(out_dir, f"{name}.{v}.onnx")
        try:
            fn(path)
            out.append((v, path))
        except Exception as e:  # a form onnxruntime cannot produce is a finding, not a crash
            print(f"  [{name}.{v}] quantization failed: {e}")

    U8, S8, QDQ, QOP = QuantType.QUInt8, QuantType.QInt8, QuantFormat.QDQ, QuantFormat.QOperator
    suffixes = [("", ())] + ([("_attnfp32", attn)] if attn else [])
    for sfx, excl in suffixes:
        # QDQ quantizes every op in its registry by default (incl. Reshape/Transpose/MatMul);
        # that default is what a user gets, so keep it.
        add(f"qdq_u8s8{sfx}", lambda p: static(name, fp32_path, p, QDQ, U8, False, exclude=excl,
                                                all_ops=True))
        add(f"qdq_s8s8_sym{sfx}", lambda p: static(name, fp32_path, p, QDQ, S8, True,
                                                   exclude=excl, all_ops=True))
        add(f"qop_u8s8{sfx}", lambda p: static(name, fp32_path, p, QOP, U8, False, exclude=excl))
        add(f"qop_s8s8_sym{sfx}", lambda p: static(name, fp32_path, p, QOP, S8, True,
                                                   exclude=excl))
    add("qop_all", lambda p: static(name, fp32_path, p, QOP, U8, False, all_ops=True))
    add("dyn_u8s8", lambda p: quantize_dynamic(fp32_path, p, weight_type=QuantType.QInt8,
                                               per_channel=True,
                                               nodes_to_exclude=attn))
    add("int_s8_f32", lambda p: onnx.save(integer_float_rescale(name, m), p))
    add("int_s8_f32_rq", lambda p: onnx.save(integer_float_rescale(name, m, "ops"), p))
    if any(a.name == "group" and a.i > 1 for n in m.graph.node for a in n.attribute):
        # depthwise convs stay fp32: tract has a direct f32 depthwise kernel, no int8 one
        add("int_s8_f32_rq_dwfp32",
            lambda p: onnx.save(integer_float_rescale(name, m, "ops", skip_grouped=True), p))
        # and only the 1x1 convs (pure matmuls) in int8
        add("int_s8_f32_rq_1x1only",
            lambda p: onnx.save(integer_float_rescale(name, m, "ops", only_1x1=True), p))
    return out


# hand-built integer form ----------------------------------------------------------------------
def activation_absmax(name, model):
    """Max |x| seen at the input of every Conv/MatMul/Gemm over the calibration set."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    wanted = sorted({n.input[0] for n in m.graph.node
                     if n.op_type in ("Conv", "MatMul", "Gemm") and n.input[1] in inits})
    existing = {o.name for o in m.graph.output}
    for w in wanted:
        if w not in existing:
            m.graph.output.append(helper.make_empty_tensor_value_info(w))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    absmax = {w: 0.0 for w in wanted}
    for feed in calibration_feeds(name):
        for n, v in zip(names, sess.run(None, feed)):
            if n in absmax:
                absmax[n] = max(absmax[n], float(np.abs(v).max()))
    return absmax


def integer_float_rescale(name, model, quantizer="ql", skip_grouped=False, only_1x1=False):
    """Replace each Conv/MatMul/Gemm with a const weight by the int8 x int8 -> int32 -> float form.

    Symmetric everywhere: activation zp = 0 (int8), weight zp = 0 (int8, per output channel),
    so the integer op needs no zero-point inputs and tract wires no compensation sums.
    quantizer="ql" quantizes the activation with QuantizeLinear; "ops" spells the same thing as
    Mul(1/s_x) -> Round -> Clip(-127, 127) -> Cast(int8), ops tract runs vectorized."""
    absmax = activation_absmax(name, model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    new_nodes, new_inits = [], list(model.graph.initializer)

    def const(n, a):
        new_inits.append(numpy_helper.from_array(np.asarray(a), n))
        return n

    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        keep_float = (
            node.op_type not in ("Conv", "MatMul", "Gemm") or node.input[1] not in inits
            or (skip_grouped and attrs.get("group", 1) > 1)
            or (only_1x1 and node.op_type == "Conv" and list(attrs.get("kernel_shape", [])) != [1, 1]))
        if keep_float:
            new_nodes.append(node)
            continue
        x, w = node.input[0], inits[node.input[1]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        p = node.name
        if node.op_type == "Gemm":
            assert attrs.get("transB", 0) == 1 and attrs.get("transA", 0) == 0
            w = w.T  # [K, N] for MatMulInteger
        # per output channel: axis 0 of a Conv weight, axis 1 (N) of a MatMul weight
        ch_axis = 0 if node.op_type == "Conv" else 1
        red = tuple(i for i in range(w.ndim) if i != ch_axis)
        s_w = np.maximum(np.abs(w).max(axis=red), 1e-8) / 127.0
        shape = [-1] + [1] * (w.ndim - 1) if ch_axis == 0 else [1, -1]
        w_q = np.clip(np.round(w / s_w.reshape(shape)), -127, 127).astype(np.int8)
        s_x = max(absmax[x], 1e-8) / 127.0
        xq = f"{p}.xq"
        if quantizer == "ql":
            new_nodes.append(helper.make_node(
                "QuantizeLinear",
                [x, const(f"{p}.sx", np.float32(s_x)), const(f"{p}.zx", np.int8(0))],
                [xq], name=xq))
        else:
            new_nodes += [
                helper.make_node("Mul", [x, const(f"{p}.inv_sx", np.float32(1.0 / s_x))],
                                 [f"{p}.xs"], name=f"{p}.xs"),
                helper.make_node("Round", [f"{p}.xs"], [f"{p}.xr"], name=f"{p}.xr"),
                helper.make_node("Clip", [f"{p}.xr", const(f"{p}.lo", np.float32(-127)),
                                          const(f"{p}.hi", np.float32(127))],
                                 [f"{p}.xc"], name=f"{p}.xc"),
                helper.make_node("Cast", [f"{p}.xc"], [xq], name=xq, to=TensorProto.INT8),
            ]
        acc = f"{p}.acc"
        if node.op_type == "Conv":
            conv_attrs = {k: v for k, v in attrs.items()}
            new_nodes.append(helper.make_node("ConvInteger", [xq, const(f"{p}.wq", w_q)], [acc],
                                              name=acc, **conv_attrs))
            rshape = [1, -1, 1, 1]
        else:
            new_nodes.append(helper.make_node("MatMulInteger", [xq, const(f"{p}.wq", w_q)], [acc],
                                              name=acc))
            rshape = [-1]
        f = f"{p}.f32"
        new_nodes.append(helper.make_node("Cast", [acc], [f], name=f, to=TensorProto.FLOAT))
        scale = (s_x * s_w).astype(np.float32).reshape(rshape)
        bias_in = len(node.input) > 2 and node.input[2]
        y = node.output[0]
        scaled = f"{p}.scaled" if bias_in else y
        new_nodes.append(helper.make_node("Mul", [f, const(f"{p}.s", scale)], [scaled],
                                          name=scaled))
        if bias_in:
            new_nodes.append(helper.make_node(
                "Add", [scaled, const(f"{p}.b", inits[node.input[2]].reshape(rshape))], [y],
                name=y))

    used = {i for n in new_nodes for i in n.input}
    graph = helper.make_graph(new_nodes, model.graph.name, model.graph.input, model.graph.output,
                              [i for i in new_inits if i.name in used])
    out = helper.make_model(graph, opset_imports=model.opset_import)
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out
