#!/usr/bin/env python3
"""Writes tests/fixtures/hsi: tiny ENVI cubes and MATLAB v5 .mat files, and expected.json with
the values tests/references/hsi_readers.rs expects src/hsi/envi.rs and src/hsi/mat.rs to read from them.

Rerun from the repository root (it replaces the whole folder's files, same bytes every time):

    python3 scripts/reference/hsi_fixtures.py

Needs numpy and scipy (written with numpy 2.4.6 and scipy 1.17.1). Deterministic: one fixed
seed, and the creation date scipy writes into a .mat header is overwritten with a fixed text.

ENVI (every real data type × bsq/bil/bip × little/big endian, 3 lines × 4 samples × 5 bands):
  <type>_<interleave>_<le|be>   data file named by interleave so every naming convention is
                                 read: bsq `x.img` + `x.hdr`, bil `x.bil` + `x.bil.hdr`, bip `x`
                                 + `x.hdr`; expected.json says which path the test opens.
  i16_bil_be_offset.raw/.hdr     37 bytes of junk before the data (`header offset = 37`)
  f32_bip_meta.dat/.hdr          CRLF lines, comments, mixed-case keys, multi-line braces,
                                 wavelengths, fwhm, band names, map info, data ignore value
Values exercise each type's range (its minimum and maximum, negatives, integers an f32 cannot
hold); expected values are those the reader must give: the value rounded to the nearest f32
(for 64-bit integers computed exactly here, not through numpy's double rounding).

MAT (level 5):
  scene_i16.mat      scipy savemat, uncompressed: data int16 3×4×5, map uint8 3×4
  scene_u16.mat      scipy, uncompressed: data uint16 (values > 32767), map uint8
  scene_f32_z.mat    scipy, compressed: data float32, map logical, wavelength 1×5
  mixed_z.mat        scipy, compressed: data float64 + every numeric class, 2-D and 4-D arrays,
                     a scalar, an empty array, and variables the reader must skip: char, cell,
                     struct, sparse, complex, int64 beyond 2^53
  matlab_le_z.mat    written here the way MATLAB writes the ABU scenes: class double stored as
  matlab_be.mat      miINT16 (data) and miUINT8 (map), 4-byte small elements for the names;
  matlab_be_z.mat    little-endian compressed, big-endian uncompressed and compressed
  no_data.mat        only `map` and `other`                   (read_scene must refuse)
  cube_2d.mat        `data` is 2-D                             (read_scene must refuse)
  map_shape.mat      `map` is 4×3 for a 3×4×5 `data`           (read_scene must refuse)
Every .mat written here is checked against scipy.io.loadmat before it is kept.
"""
import json
import pathlib
import struct
import zlib

import numpy as np
import scipy
import scipy.io
import scipy.sparse

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "hsi"
SEED = 20240607
LINES, SAMPLES, BANDS = 3, 4, 5
HEADER_TEXT = b"MATLAB 5.0 MAT-file, Platform: fixture, Created by: hsi_fixtures.py"

rng = np.random.default_rng(SEED)


def f32_nearest_int(n):
    """The f32 nearest to the integer n, ties to even, exactly (numpy goes via f64 for 64-bit
    integers, which can round twice)."""
    c = np.float32(float(n))
    best = None
    for cand in (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))):
        if not np.isfinite(cand):
            continue
        d = abs(int(cand) - n)
        even = (int(np.array(cand).view(np.uint32)) & 1) == 0
        key = (d, not even)
        if best is None or key < best[0]:
            best = (key, cand)
    return float(best[1])


def envi_values(name):
    """60 values of one ENVI type, shaped (lines, samples, bands), and their expected f32s."""
    n = LINES * SAMPLES * BANDS
    ints = {
        "u8": (np.uint8, [0, 255, 1, 128]),
        "i16": (np.int16, [-32768, 32767, -1, 0]),
        "u16": (np.uint16, [0, 65535, 32768, 40000]),
        "i32": (np.int32, [-2**31, 2**31 - 1, 16777217, -16777217]),
        "u32": (np.uint32, [0, 2**32 - 1, 16777217, 3000000001]),
        "i64": (np.int64, [-2**63, 2**63 - 1, 2**53 + 1, -(2**53 + 3)]),
        "u64": (np.uint64, [0, 2**64 - 1, 2**63, 2**53 + 1]),
    }
    if name in ints:
        dtype, special = ints[name]
        info = np.iinfo(dtype)
        values = rng.integers(int(info.min), int(info.max), size=n, dtype=dtype, endpoint=True)
        values[: len(special)] = np.array(special, dtype=dtype)
        expected = [f32_nearest_int(int(v)) for v in values]
    elif name == "f32":
        values = (rng.standard_normal(n) * 1000).astype(np.float32)
        values[:6] = np.array([-1.5, 0.0, 1e-40, 3.4e38, -3.4e38, 0.1], dtype=np.float32)
        expected = [float(v) for v in values]
    else:  # f64: most values need rounding to reach an f32
        values = rng.standard_normal(n) * 1e3
        values[:5] = [0.1, 1.0 / 3.0, -1e30, 1e-300, 123456789.123]
        expected = [float(np.float32(v)) for v in values]
    return values.reshape(LINES, SAMPLES, BANDS), expected


ENVI_TYPES = {  # name: ENVI data type number
    "u8": 1, "i16": 2, "i32": 3, "f32": 4, "f64": 5, "u16": 12, "u32": 13, "i64": 14, "u64": 15,
}


def envi_bytes(cube, interleave, big_endian):
    order = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    arr = np.ascontiguousarray(cube.transpose(order))
    return arr.astype(arr.dtype.newbyteorder(">" if big_endian else "<")).tobytes()


def envi_header(data_type, interleave, byte_order, offset=0):
    return (
        "ENVI\n"
        "description = {hsi_fixtures.py}\n"
        f"samples = {SAMPLES}\nlines = {LINES}\nbands = {BANDS}\n"
        f"header offset = {offset}\nfile type = ENVI Standard\n"
        f"data type = {data_type}\ninterleave = {interleave}\nbyte order = {byte_order}\n"
    )


def write_envi(expected):
    drawn = {name: envi_values(name) for name in ENVI_TYPES}
    cubes = {name: values for name, (_, values) in drawn.items()}
    files = []
    for index, (name, code) in enumerate(ENVI_TYPES.items()):
        cube = drawn[name][0]
        for interleave in ("bsq", "bil", "bip"):
            for big in (False, True):
                stem = f"{name}_{interleave}_{'be' if big else 'le'}"
                data, header = {
                    "bsq": (f"{stem}.img", f"{stem}.hdr"),
                    "bil": (f"{stem}.bil", f"{stem}.bil.hdr"),
                    "bip": (stem, f"{stem}.hdr"),
                }[interleave]
                (OUT / data).write_bytes(envi_bytes(cube, interleave, big))
                (OUT / header).write_text(envi_header(code, interleave, int(big)))
                # Open the header or the data file in turn, shifted by one from type to type so
                # each naming convention is opened both ways.
                opened = header if (index + len(files)) % 2 == 0 else data
                files.append({"open": opened, "cube": name, "data_type": code,
                              "interleave": interleave, "byte_order": int(big)})

    cube = drawn["i16"][0]
    junk = bytes((7 * i + 3) % 256 for i in range(37))
    (OUT / "i16_bil_be_offset.raw").write_bytes(junk + envi_bytes(cube, "bil", True))
    (OUT / "i16_bil_be_offset.hdr").write_text(envi_header(2, "bil", 1, offset=37))
    files.append({"open": "i16_bil_be_offset.hdr", "cube": "i16", "data_type": 2,
                  "interleave": "bil", "byte_order": 1, "header_offset": 37})

    cube = drawn["f32"][0]
    (OUT / "f32_bip_meta.dat").write_bytes(envi_bytes(cube, "bip", False))
    meta = {
        "wavelength": [400.5, 410.25, 420.0, 1000.0, 2500.125],
        "wavelength_units": "Nanometers",
        "band_names": ["Band 1", "Band 2", "Band 3", "Band 4", "Band 5"],
        "data_ignore_value": -9999.0,
        "map_info": {
            "projection": "UTM", "reference_pixel": [1.0, 1.0],
            "reference_easting_northing": [500000.0, 4000000.0], "pixel_size": [30.0, 30.0],
            "rest": ["13", "North", "WGS-84", "units=Meters"],
        },
    }
    text = (
        "ENVI\n"
        "; a comment line, and the keys below in mixed case\n"
        "description = {\n  A fixture with metadata,\n  written by hsi_fixtures.py}\n"
        "Samples = 4\nLINES   = 3\nbands= 5\nHeader Offset = 0\nfile type = ENVI Standard\n"
        "Data Type = 4\nINTERLEAVE = BIP\nsensor type = Unknown\nbyte order = 0\n"
        "map info = {UTM, 1.000, 1.000, 500000.0, 4000000.0, 30.0, 30.0, 13, North, WGS-84,"
        " units=Meters}\n"
        "wavelength units = Nanometers\n"
        "band names = {\n Band 1, Band 2,\n Band 3, Band 4, Band 5}\n"
        "wavelength = {\n 400.5, 410.25, 420.0,\n 1000.0, 2500.125\n}\n"
        "fwhm = {10, 10, 10, 10, 10}\n"
        "data ignore value = -9999\n"
    )
    (OUT / "f32_bip_meta.hdr").write_bytes(text.replace("\n", "\r\n").encode())
    files.append({"open": "f32_bip_meta.dat", "cube": "f32", "data_type": 4,
                  "interleave": "bip", "byte_order": 0, "meta": meta})
    expected["envi"] = {"lines": LINES, "samples": SAMPLES, "bands": BANDS,
                        "cubes": cubes, "files": files}


# ---- MAT ----------------------------------------------------------------------------------

MI = {"int8": 1, "uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 6, "float32": 7,
      "float64": 9, "int64": 12, "uint64": 13}
MX_DOUBLE = 6


def mat_element(e, mtype, payload):
    if len(payload) <= 4:  # MATLAB's small data element: size and type share the first u32
        return struct.pack(e + "I", (len(payload) << 16) | mtype) + payload.ljust(4, b"\0")
    pad = (-len(payload)) % 8
    return struct.pack(e + "II", mtype, len(payload)) + payload + b"\0" * pad


def mat_matrix(e, name, array, mx_class, storage):
    """One miMATRIX element the way MATLAB writes it: class `mx_class`, values stored as the
    (possibly smaller) type `storage`, column-major."""
    flags = struct.pack(e + "II", mx_class, 0)
    body = mat_element(e, MI["uint32"], flags)
    body += mat_element(e, MI["int32"], np.array(array.shape, dtype=e + "i4").tobytes())
    body += mat_element(e, MI["int8"], name.encode())
    values = array.astype(storage).flatten(order="F").astype(np.dtype(storage).newbyteorder(e))
    body += mat_element(e, MI[np.dtype(storage).name], values.tobytes())
    return struct.pack(e + "II", 14, len(body)) + body


def mat_file(e, elements, compress):
    header = HEADER_TEXT.ljust(116, b" ") + b"\0" * 8 + struct.pack(e + "HH", 0x0100, 0x4D49)
    out = header
    for element in elements:
        if compress:
            z = zlib.compress(element, 6)
            out += struct.pack(e + "II", 15, len(z)) + z
        else:
            out += element
    return out


def fix_header(path):
    """scipy writes the creation time into the header text; a fixed text keeps reruns identical."""
    raw = bytearray(path.read_bytes())
    raw[:116] = HEADER_TEXT.ljust(116, b" ")
    path.write_bytes(bytes(raw))


def savemat(name, variables, compress):
    path = OUT / name
    scipy.io.savemat(path, variables, format="5", do_compression=compress, oned_as="row")
    fix_header(path)
    return path


def c_order(array):
    return [float(v) for v in np.asarray(array, dtype=np.float64).reshape(-1)]


def entry(name, array):
    array = np.asarray(array)
    return {"name": name, "dims": list(array.shape), "data": c_order(array)}


def scene_map():
    m = np.zeros((LINES, SAMPLES), dtype=np.uint8)
    m[0, 1] = 1
    m[2, 3] = 1
    m[1, 0] = 2  # any nonzero value is an anomaly
    return m


def check_loadmat(path, arrays):
    loaded = scipy.io.loadmat(path, mat_dtype=True, variable_names=[a["name"] for a in arrays])
    for a in arrays:
        got = np.asarray(loaded[a["name"]], dtype=np.float64)
        assert list(got.shape) == a["dims"], (path, a["name"], got.shape)
        assert c_order(got) == a["data"], (path, a["name"])


def write_mat(expected):
    mats = []
    m = scene_map()

    data = rng.integers(-32768, 32767, size=(LINES, SAMPLES, BANDS), endpoint=True, dtype=np.int16)
    data.flat[:2] = [-32768, 32767]
    arrays = [entry("data", data), entry("map", m)]
    check_loadmat(savemat("scene_i16.mat", {"data": data, "map": m}, False), arrays)
    mats.append({"file": "scene_i16.mat", "arrays": arrays, "labels": 3})

    data = rng.integers(0, 65535, size=(LINES, SAMPLES, BANDS), endpoint=True, dtype=np.uint16)
    data.flat[:2] = [65535, 32768]
    arrays = [entry("data", data), entry("map", m)]
    check_loadmat(savemat("scene_u16.mat", {"data": data, "map": m}, False), arrays)
    mats.append({"file": "scene_u16.mat", "arrays": arrays, "labels": 3})

    data = (rng.standard_normal((LINES, SAMPLES, BANDS)) * 100).astype(np.float32)
    wl = np.array([[400.5, 410.25, 420.0, 1000.0, 2500.125]])
    arrays = [entry("data", data), entry("map", m != 0), entry("wavelength", wl)]
    path = savemat("scene_f32_z.mat", {"data": data, "map": m != 0, "wavelength": wl}, True)
    check_loadmat(path, arrays)
    mats.append({"file": "scene_f32_z.mat", "arrays": arrays, "labels": 3})

    numeric = {
        "data": rng.standard_normal((LINES, SAMPLES, BANDS)),
        "map": m.astype(np.float64),
        "int8_values": np.array([[-128, 127, 0, -1]], dtype=np.int8),
        "uint8_values": np.array([[0, 255, 7]], dtype=np.uint8),
        "int16_values": np.array([[-32768, 32767]], dtype=np.int16),
        "uint16_values": np.array([[65535, 1]], dtype=np.uint16),
        "int32_values": np.array([[-2**31, 2**31 - 1]], dtype=np.int32),
        "uint32_values": np.array([[2**32 - 1, 0]], dtype=np.uint32),
        "int64_values": np.array([[-2**53, 2**53, -5]], dtype=np.int64),
        "uint64_values": np.array([[2**53, 3]], dtype=np.uint64),
        "single_values": np.array([[0.1, -2.5e-8]], dtype=np.float32),
        "matrix": np.arange(6, dtype=np.float64).reshape(2, 3) * 1.5,
        "four_d": np.arange(48, dtype=np.float64).reshape(2, 3, 4, 2) - 20,
        "scalar": np.array(7.25),
        "empty": np.zeros((0, 3)),
    }
    skipped = {
        "text": "a char array",
        "cells": np.array([np.array([[1.0]]), "x"], dtype=object),
        "record": {"a": np.array([[1.0]]), "b": "y"},
        "sparse": scipy.sparse.csc_matrix(np.eye(3)),
        "complex": np.array([[1 + 2j, 3 - 4j]]),
        "int64_big": np.array([[2**53 + 1, 1]], dtype=np.int64),
    }
    variables = {}
    order = ["data", "text", "int8_values", "cells", "map", "uint8_values", "record",
             "int16_values", "uint16_values", "sparse", "int32_values", "uint32_values",
             "complex", "int64_values", "uint64_values", "int64_big", "single_values",
             "matrix", "four_d", "scalar", "empty"]
    for key in order:
        variables[key] = numeric[key] if key in numeric else skipped[key]
    arrays = [entry(k, numeric[k]) for k in order if k in numeric]
    arrays[[a["name"] for a in arrays].index("scalar")]["dims"] = [1, 1]  # MATLAB has no 0-D
    check_loadmat(savemat("mixed_z.mat", variables, True), arrays)
    mats.append({"file": "mixed_z.mat", "arrays": arrays, "labels": 3})

    # The ABU layout: double arrays stored as miINT16 / miUINT8, names as small elements.
    data = rng.integers(-300, 7000, size=(LINES, SAMPLES, BANDS)).astype(np.float64)
    data.flat[:2] = [-32768, 32767]
    labels = m.astype(np.float64)
    arrays = [entry("data", data), entry("map", labels)]
    for name, e, compress in (("matlab_le_z.mat", "<", True), ("matlab_be.mat", ">", False),
                              ("matlab_be_z.mat", ">", True)):
        raw = mat_file(e, [mat_matrix(e, "data", data, MX_DOUBLE, "int16"),
                           mat_matrix(e, "map", labels, MX_DOUBLE, "uint8")],
                       compress)
        (OUT / name).write_bytes(raw)
        check_loadmat(OUT / name, arrays)
        mats.append({"file": name, "arrays": arrays, "labels": 3})

    for name, variables in (
        ("no_data.mat", {"map": m, "other": np.ones((2, 2))}),
        ("cube_2d.mat", {"data": np.ones((3, 4)), "map": m}),
        ("map_shape.mat", {"data": np.ones((3, 4, 5)), "map": np.zeros((4, 3), np.uint8)}),
    ):
        savemat(name, variables, False)
    expected["mat"] = mats


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    expected = {"generator": "scripts/reference/hsi_fixtures.py",
                "numpy": np.__version__, "scipy": scipy.__version__, "seed": SEED}
    write_envi(expected)
    write_mat(expected)
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
