#!/usr/bin/env python3
"""Writes small synthetic checkpoints in torch.save's exact layouts, without torch.

Stand-in `torch` / `torch._utils` modules are registered in sys.modules so that Python's own
pickler emits the same GLOBAL / BINPERSID / REDUCE opcodes torch.save does (protocol 2).
The files exercise what the real checkpoints do not: non-contiguous views, storage offsets,
stride-0 expands, fp16/bf16/f64/int/bool storages, Parameters, shared tensors, a legacy
storage view, big-endian data, nested checkpoints and a pickled nn.Module.

    python3 tools/make_fixtures.py tests/fixtures
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
linear = types.ModuleType("torch.nn.modules.linear")
sys.modules.update({"torch": torch, "torch._utils": utils, "torch.nn.modules.linear": linear})
torch._utils = utils


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


def _rebuild_parameter(*args):
    raise NotImplementedError


for fn in (_rebuild_tensor_v2, _rebuild_parameter):
    fn.__module__ = "torch._utils"
    setattr(utils, fn.__name__, fn)

STORAGE_TYPES = {}
for name in ("FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage",
             "IntStorage", "BoolStorage", "ByteStorage"):
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
    STORAGE_TYPES[name] = cls


class Linear:  # a stand-in nn.Module, pickled by reference like torch.save(model) does
    pass


Linear.__module__ = "torch.nn.modules.linear"
linear.Linear = Linear


class Storage:
    def __init__(self, key, type_name, raw, numel, view=None):
        self.key, self.cls, self.raw, self.numel, self.view = key, STORAGE_TYPES[type_name], raw, numel, view


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return (_rebuild_parameter, (self.tensor, True, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy
        self.storages = {}

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages[obj.key] = obj
            pid = ("storage", obj.cls, obj.key, "cpu", obj.numel)
            return pid + (obj.view,) if self.legacy else pid
        return None


def bf16(values, endian):
    return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype(endian + "u2").tobytes()


def storage(key, type_name, arr_bytes, itemsize):
    return Storage(key, type_name, arr_bytes, len(arr_bytes) // itemsize)


def sample_state_dict(big_endian=False):
    e = ">" if big_endian else "<"
    f32 = lambda a: np.asarray(a, e + "f4").tobytes()  # noqa: E731
    conv = storage("0", "FloatStorage", f32(np.arange(24) * 0.25 - 3), 4)
    grid = storage("1", "FloatStorage", f32(np.arange(12) * 0.5), 4)  # a 3x4 matrix
    half = storage("2", "HalfStorage", np.asarray([1.0, -2.5, 65504, 6e-8, 0.333, -0.0], e + "f2").tobytes(), 2)
    bfl = storage("3", "BFloat16Storage", bf16([1.5, -3.25, 1e10, 0.1], e), 2)
    dbl = storage("4", "DoubleStorage", np.asarray([np.pi, np.e, 1e-300, -1.5], e + "f8").tobytes(), 8)
    nbt = storage("5", "LongStorage", np.asarray([12345678901], e + "i8").tobytes(), 8)
    i32 = storage("6", "IntStorage", np.asarray([-7, 8, 2147483647], e + "i4").tobytes(), 4)
    mask = storage("7", "BoolStorage", bytes([1, 0, 1]), 1)
    u8 = storage("8", "ByteStorage", bytes([0, 255, 7]), 1)
    empty = storage("9", "FloatStorage", b"", 4)
    tied = Tensor(conv, 4, [5], [1])
    sd = collections.OrderedDict()
    sd["conv.weight"] = Tensor(conv, 0, [2, 3, 2, 2], [12, 4, 2, 1])
    sd["grid.t"] = Tensor(grid, 0, [4, 3], [1, 4])  # transpose of the 3x4 matrix
    sd["grid.window"] = Tensor(grid, 5, [2, 2], [1, 4])  # offset + transposed window
    sd["grid.expand"] = Tensor(grid, 1, [3, 2], [0, 1])  # stride-0 broadcast
    sd["half"] = Tensor(half, 0, [6], [1])
    sd["bf16"] = Tensor(bfl, 0, [2, 2], [2, 1])
    sd["double"] = Tensor(dbl, 0, [4], [1])
    sd["bn.num_batches_tracked"] = Tensor(nbt, 0, [], [])
    sd["int32"] = Tensor(i32, 0, [3], [1])
    sd["mask"] = Tensor(mask, 0, [3], [1])
    sd["u8"] = Tensor(u8, 0, [3], [1])
    sd["param"] = Parameter(Tensor(grid, 2, [2], [3]))
    sd["empty"] = Tensor(empty, 0, [0, 3], [3, 1])
    sd["tied.a"] = tied
    sd["tied.b"] = tied  # the same object: pickled once, then BINGET
    # state_dict() sets this attribute; pickle writes it with BUILD.
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("bn", {"version": 2})])
    return sd


def dump(obj, legacy):
    buf = io.BytesIO()
    p = Pickler(buf, legacy)
    p.dump(obj)
    return buf.getvalue(), p.storages


def write_zip(path, obj, byteorder="little"):
    data, storages = dump(obj, legacy=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/byteorder", byteorder)
        for key, s in storages.items():
            z.writestr(f"archive/data/{key}", s.raw)
        z.writestr("archive/version", "3\n")


def write_legacy(path, obj, extra_storages=()):
    data, storages = dump(obj, legacy=True)
    for s in extra_storages:
        storages[s.key] = s
    keys = sorted(storages)  # torch writes them sorted
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 8}}, f, protocol=2)
        f.write(data)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            s = storages[key]
            f.write(struct.pack("<q", s.numel))
            f.write(s.raw)


def main(out):
    os.makedirs(out, exist_ok=True)
    write_zip(f"{out}/synthetic_zip.pth", sample_state_dict())
    write_zip(f"{out}/synthetic_big_endian.pth", sample_state_dict(big_endian=True), "big")

    # Legacy file, plus a tensor on a storage *view* (torch < 0.4): root storage "root" of
    # 10 floats, view ("v", offset 4, size 3); the tensor takes view elements 1..3.
    sd = sample_state_dict()
    root = np.arange(10, dtype="<f4") * 10
    view = Storage("root", "FloatStorage", root.tobytes(), 10, ("v", 4, 3))
    sd["viewed"] = Tensor(view, 1, [2], [1])
    write_legacy(f"{out}/synthetic_legacy.pth", sd)

    nested = {"epoch": 3, "state_dict": collections.OrderedDict(
        [("w", Tensor(storage("0", "FloatStorage", np.asarray([1, 2, 3, 4], "<f4").tobytes(), 4), 0, [2, 2], [1, 2]))]),
        "optimizer": {"lr": 0.1, "betas": (0.9, 0.999)}}
    write_zip(f"{out}/nested_zip.pth", nested)

    write_zip(f"{out}/pickled_module.pth", Linear())


if __name__ == "__main__":
    main(sys.argv[1])
