"""Run the int8-on-tract study: build graphs, quantize them, time onnxruntime and tract (through
tools/int8-probe), check outputs, and print one markdown table per model.

    python3 scripts/int8/study.py --probe /work/target-int8/release/int8-probe --out /tmp/int8

Timings on a shared machine are noisy, so every model/variant is timed in R interleaved rounds
(ORT and tract back to back in each round) and the table reports the median over rounds of
each round's median, and the ratios are taken within a round before the median.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import quantize  # noqa: E402


def ort_session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_time(sess, feed, runs, warmup=3):
    for _ in range(warmup):
        out = sess.run(None, feed)
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        out = sess.run(None, feed)
        t.append((time.perf_counter() - s) * 1e3)
    return float(np.median(t)), out


def probe(exe, model, inputs, runs, extra=(), save=None):
    cmd = [exe, model, "--runs", str(runs)] + [a for i in inputs for a in ("-i", i)] + list(extra)
    if save:
        cmd += ["--save-outputs", save]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        # tract's own error text is the finding (e.g. an unknown com.microsoft op)
        err = r.stderr.strip().splitlines()
        return {"error": " | ".join(l.strip() for l in err if l.strip())[:400]}
    return json.loads(r.stdout)


def load_npy(path):
    return np.load(path)


def maxabs(a, b):
    return float(np.max(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def summarize_ops(rep):
    """One cell: the matmul kernel families tract picked, and any 256-entry lookup tables
    (a LookupTable after a Softmax is the wrong-output signature)."""
    if "error" in rep:
        m = re.search(r"Unimplemented\((\w+)\)", rep["error"])
        return "refused: " + (m.group(1) if m else rep["error"][:60])
    ks = rep["matmul_kernels"]
    parts = []
    i32 = sorted({k.split("_")[-1] for k in ks if "_i32_" in k})
    if i32:
        family = "AMX" if any("amx" in k for k in ks) else "VNNI" if any("vnni" in k for k in ks) else ""
        parts.append(f"i32 {family} " + "+".join(i32))
    if any("_f32_" in k for k in ks):
        parts.append("f32")
    if "LookupTable" in rep["op_kinds"]:
        parts.append(f"{rep['op_kinds']['LookupTable']} LUT")
    return ", ".join(parts) or "(no matmul)"


def run_model(name, args, rounds):
    out_dir = os.path.join(args.out, name)
    os.makedirs(out_dir, exist_ok=True)
    m, feed = models.BUILDERS[name]()
    fp32_path = os.path.join(out_dir, f"{name}.fp32.onnx")
    onnx.save(m, fp32_path)
    x_path = os.path.join(out_dir, "x.npy")
    np.save(x_path, feed["x"])

    ref_sess = ort_session(fp32_path)
    ref = ref_sess.run(None, feed)[0]
    if name == "softmax5":
        # the reference for the quantized Softmax is the plain float Softmax
        sm, _ = models.softmax_fp32()
        ref = ort.InferenceSession(sm.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, feed)[0]
    ref_path = os.path.join(out_dir, "ref_ort_fp32.npy")
    np.save(ref_path, ref)

    forms = [("qdq_as_built" if name == "softmax5" else "fp32", fp32_path)]
    if name in ("convnet", "mlp", "gemm", "vit", "attn", "attn_folded"):
        forms += quantize.variants(name, fp32_path, out_dir)
    if args.only:
        forms = [f for f in forms if f[0] in args.only.split(",")]

    rows = []
    for variant, path in forms:
        row = {"model": name, "variant": variant, "path": path}
        # which ops, which kernels, where the time goes: one profiled run
        save = os.path.join(out_dir, f"tract.{variant}")
        rep = probe(args.probe, path, [x_path], 5, ["--profile"], save=save)
        row["probe"] = rep
        try:
            sess = ort_session(path)
        except Exception as e:
            sess = None
            row["ort_error"] = str(e).splitlines()[0][:300]
        ort_out = sess.run(None, feed)[0] if sess else None
        if ort_out is not None:
            row["ort_err_vs_fp32"] = maxabs(ort_out, ref)
        if "error" not in rep:
            t_out = load_npy(os.path.join(save, "out0.npy"))
            row["tract_err_vs_fp32"] = maxabs(t_out, ref)
            if ort_out is not None:
                row["tract_err_vs_ort_same"] = maxabs(t_out, ort_out)
            row["ref_absmax"] = float(np.abs(ref).max())
        rows.append((row, sess))

    # interleaved timing rounds: tract fp32 first in each round, then every form (tract, ORT)
    fp32_tract = {}
    for r in range(rounds):
        base = probe(args.probe, fp32_path, [x_path], args.runs)
        fp32_tract[r] = base.get("median_ms")
        base_ort, _ = ort_time(ref_sess, feed, args.runs)
        for row, sess in rows:
            rep = probe(args.probe, row["path"], [x_path], args.runs) if "error" not in row["probe"] else {}
            t = rep.get("median_ms")
            o = ort_time(sess, feed, args.runs)[0] if sess else None
            row.setdefault("tract_ms", []).append(t)
            row.setdefault("ort_ms", []).append(o)
            row.setdefault("vs_tract_fp32", []).append(t / fp32_tract[r] if t else None)
            row.setdefault("vs_ort_fp32", []).append(t / base_ort if t else None)
            row.setdefault("vs_ort_same", []).append(t / o if (t and o) else None)
            row.setdefault("ort_fp32_ms", []).append(base_ort)
    return [row for row, _ in rows]


def extras(args, rounds):
    """Symbolic batch vs fixed shapes, and 2 threads vs 1, for tract fp32 and the int8 form we
    recommend, with onnxruntime at 1 and 2 threads alongside. Ratios within a round."""
    rows = []
    for name in ("convnet", "vit", "mlp"):
        d = os.path.join(args.out, name)
        x = os.path.join(d, "x.npy")
        if not os.path.exists(x):  # model not part of this invocation (--models)
            continue
        feed = {"x": np.load(x)}
        for variant in ("fp32", "int_s8_f32_rq"):
            path = os.path.join(d, f"{name}.{variant}.onnx")
            if not os.path.exists(path):
                continue
            res = {}
            for _ in range(rounds):
                fixed = probe(args.probe, path, [x], args.runs).get("median_ms")
                sym = probe(args.probe, path, [x], args.runs, ["--symbolic-batch"]).get("median_ms")
                two = probe(args.probe, path, [x], args.runs, ["--threads", "2"]).get("median_ms")
                o1 = ort_time(ort_session(path, 1), feed, args.runs)[0]
                o2 = ort_time(ort_session(path, 2), feed, args.runs)[0]
                for k, v in [("tract_fixed_ms", fixed), ("tract_symbatch_ms", sym),
                             ("tract_2threads_ms", two), ("ort_1thread_ms", o1),
                             ("ort_2threads_ms", o2),
                             ("symbatch_over_fixed", sym / fixed if sym and fixed else None),
                             ("t2_over_t1", two / fixed if two and fixed else None),
                             ("ort_t2_over_t1", o2 / o1)]:
                    res.setdefault(k, []).append(v)
            rows.append({"model": name, "variant": variant, **{k: med(v) for k, v in res.items()}})
    cols = ["tract_fixed_ms", "tract_symbatch_ms", "symbatch_over_fixed", "tract_2threads_ms",
            "t2_over_t1", "ort_1thread_ms", "ort_2threads_ms", "ort_t2_over_t1"]
    lines = ["| model | form | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['variant']} | " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    return rows, "\n".join(lines)


def med(xs):
    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else None


def fmt(x, p=2):
    return "—" if x is None else f"{x:.{p}f}"


def table(rows):
    lines = ["| model | form | tract matmul kernels | tract ms | ×tract fp32 | ×ORT fp32 "
             "| ORT same-form ms | max err tract vs ORT fp32 | max err ORT same form vs ORT fp32 "
             "| max err tract vs ORT same form |",
             "|" + "---|" * 10]
    for row in rows:
        lines.append("| " + " | ".join([
            row["model"], row["variant"], summarize_ops(row["probe"]),
            fmt(med(row.get("tract_ms", []))), fmt(med(row.get("vs_tract_fp32", []))),
            fmt(med(row.get("vs_ort_fp32", []))),
            "n/a" if row.get("ort_error") else fmt(med(row.get("ort_ms", []))),
            fmt(row.get("tract_err_vs_fp32"), 3), fmt(row.get("ort_err_vs_fp32"), 3),
            fmt(row.get("tract_err_vs_ort_same"), 3),
        ]) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", default="/work/target-int8/release/int8-probe")
    ap.add_argument("--out", default="/tmp/int8-study")
    ap.add_argument("--models", default="softmax5,softmax_fp32,mlp,gemm,convnet,vit,attn,attn_folded")
    ap.add_argument("--only", default="", help="comma-separated variants to keep")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-extras", dest="extras", action="store_false",
                    help="skip the symbolic-batch and thread-count comparison")
    args = ap.parse_args()
    all_rows = []
    for name in args.models.split(","):
        print(f"== {name}", file=sys.stderr, flush=True)
        all_rows += run_model(name, args, args.rounds)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(all_rows, f, indent=1, default=str)
    print(table(all_rows), flush=True)
    if args.extras:
        rows, text = extras(args, args.rounds)
        with open(os.path.join(args.out, "extras.json"), "w") as f:
            json.dump(rows, f, indent=1)
        print()
        print(text)


if __name__ == "__main__":
    main()
