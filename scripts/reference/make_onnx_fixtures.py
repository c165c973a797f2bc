#!/usr/bin/env python3
"""Writes the tiny ONNX graphs tests/inputs/inspect_models.rs classifies: the int8 linear-layer form
models/README.md recommends (QuantizeLinear → MatMulInteger without zero points → Cast → Mul)
and the same layer in fp32. Needs numpy and onnx."""
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/onnx"
K, N = 64, 32


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, OUT / name)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    w = rng.standard_normal((K, N)).astype(np.float32) * 0.1
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, K])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, N])

    save(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "fp32", [x], [y],
                           [numpy_helper.from_array(w, "w")]), "linear_fp32.onnx")

    s_w = np.abs(w).max(axis=0) / 127.0
    w_q = np.clip(np.round(w / s_w), -127, 127).astype(np.int8)
    s_x = np.float32(4.0 / 127.0)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_x", "zp"], ["x_q"]),
        helper.make_node("MatMulInteger", ["x_q", "w_q"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["acc_f", "scale"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(s_x, dtype=np.float32), "s_x"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "zp"),
        numpy_helper.from_array(w_q, "w_q"),
        numpy_helper.from_array((s_x * s_w).astype(np.float32), "scale"),
    ]
    save(helper.make_graph(nodes, "int8", [x], [y], inits), "linear_int8.onnx")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
