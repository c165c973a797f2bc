#!/usr/bin/env python3
"""Independent reference reader for PyTorch state-dict files (numpy + stdlib only, no torch).

It shares no code with the Rust reader: Python's own `pickle.Unpickler` runs the pickle, a
whitelist in `find_class` stands in for torch's globals, and numpy's `as_strided` applies
size/stride/offset. Its output is the fixture the Rust tests compare against:

    python3 tools/torch_reference.py OUT.json FILE.pth [FILE.pth ...]

For every tensor it records dtype, shape, the float64 sum and sum of |x| of the values
converted to float32 (what the Rust reader returns), and the first 6 values (row-major).
"""
import collections
import io
import json
import pickle
import struct
import sys
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

DTYPES = {
    "DoubleStorage": ("float64", np.float64),
    "FloatStorage": ("float32", np.float32),
    "HalfStorage": ("float16", np.float16),
    "BFloat16Storage": ("bfloat16", None),  # numpy has no bfloat16: decoded by hand below
    "LongStorage": ("int64", np.int64),
    "IntStorage": ("int32", np.int32),
    "ShortStorage": ("int16", np.int16),
    "CharStorage": ("int8", np.int8),
    "ByteStorage": ("uint8", np.uint8),
    "BoolStorage": ("bool", np.bool_),
}
ITEMSIZE = {"bfloat16": 2}


class StorageType:
    def __init__(self, name):
        self.name, self.np = DTYPES[name]

    def itemsize(self):
        return ITEMSIZE.get(self.name) or np.dtype(self.np).itemsize


class Lazy:
    """A tensor whose storage bytes are not read yet (legacy files store them after the pickle)."""

    def __init__(self, pid, offset, size, stride):
        self.pid, self.offset, self.size, self.stride = pid, offset, tuple(size), tuple(stride)


def rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    assert not hooks and not metadata
    return Lazy(storage, offset, size, stride)


def rebuild_parameter(data, requires_grad, hooks, state=None):
    return data


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor_v2
        if (module, name) in (("torch._utils", "_rebuild_parameter"),
                              ("torch._utils", "_rebuild_parameter_with_state")):
            return rebuild_parameter
        if module == "torch" and name in DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"global {module}.{name} not whitelisted")

    def persistent_load(self, pid):
        assert pid[0] == "storage", pid
        return pid  # ('storage', type, key, location, numel[, view_metadata])


def decode(raw, stype, big_endian):
    if stype.name == "bfloat16":
        bits = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    dt = np.dtype(stype.np).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=dt)


def materialise(lazy, storages, big_endian):
    pid = lazy.pid
    stype, key = pid[1], str(pid[2])
    flat = decode(storages[key], stype, big_endian)
    base = 0
    if len(pid) > 5 and pid[5] is not None:  # legacy storage view: (view_key, offset, size)
        base = pid[5][1]
        flat = flat[base:base + pid[5][2]]
    isz = flat.dtype.itemsize
    arr = np.lib.stride_tricks.as_strided(
        flat[lazy.offset:], shape=lazy.size, strides=[s * isz for s in lazy.stride])
    # np.array, not ascontiguousarray: the latter turns 0-d tensors into shape (1,)
    return stype.name, np.array(arr, order="C", copy=True)


def load_zip(path):
    z = zipfile.ZipFile(path)
    pkl = min((n for n in z.namelist() if n.endswith("data.pkl")), key=len)
    prefix = pkl[: -len("data.pkl")]
    big = False
    if prefix + "byteorder" in z.namelist():
        big = z.read(prefix + "byteorder") == b"big"
    obj = Unpickler(io.BytesIO(z.read(pkl))).load()

    class Storages(dict):
        def __missing__(self, key):
            return z.read(f"{prefix}data/{key}")

    return obj, Storages(), big


def load_legacy(path):
    f = open(path, "rb")
    assert pickle.load(f) == LEGACY_MAGIC
    assert pickle.load(f) == 1001
    sys_info = pickle.load(f)
    obj = Unpickler(f).load()
    keys = pickle.load(f)
    # element sizes come from the persistent ids in obj
    types = {}

    def walk(v):
        if isinstance(v, Lazy):
            types[str(v.pid[2])] = v.pid[1]
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(obj)
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        storages[key] = f.read(count * types[key].itemsize())
    return obj, storages, not sys_info.get("little_endian", True)


def summarise(path):
    with open(path, "rb") as fh:
        head = fh.read(4)
    obj, storages, big = load_zip(path) if head == b"PK\x03\x04" else load_legacy(path)
    out = collections.OrderedDict()

    def visit(prefix, d):
        for k, v in d.items():
            if isinstance(v, Lazy):
                dtype, arr = materialise(v, storages, big)
                f32 = arr.astype(np.float32).ravel()
                entry = {
                    "dtype": dtype,
                    "shape": list(arr.shape),
                    "sum": float(f32.astype(np.float64).sum()),
                    "abs_sum": float(np.abs(f32.astype(np.float64)).sum()),
                    "first": [float(x) for x in f32[:6]],
                }
                if arr.dtype.kind in "iub":
                    entry["ints"] = [int(x) for x in arr.ravel()[:6]]
                out[prefix + k] = entry
            elif isinstance(v, dict):
                visit(prefix + k + "/", v)  # nested dicts: "state_dict/conv.weight"

    visit("", obj)
    return out


if __name__ == "__main__":
    result = collections.OrderedDict()
    for p in sys.argv[2:]:
        result[p.rsplit("/", 1)[-1]] = summarise(p)
    with open(sys.argv[1], "w") as fh:
        json.dump(result, fh, indent=1)
