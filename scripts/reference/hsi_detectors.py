#!/usr/bin/env python3
"""Independent numpy reference for the hyperspectral anomaly detectors in `src/hsi`
(global RX, local dual-window RX, CRD, SLRX), written from the definitions alone and used by
tests/references/hsi_detectors.rs. It writes tests/fixtures/hsi_detectors/:

  small.npy            float32 24×20×12 synthetic cube: 4 endmembers mixed with Dirichlet
                       abundances + Gaussian noise, and 4 sub-pixel targets (0.3·target +
                       0.7·background), one on the top edge and one in the bottom-right corner
  small_labels.npy     uint8 24×20, 1 at the 4 targets
  small_grx.npy        float64 24×20 global RX of small.npy
  small_lrx_3_9.npy    float64 local RX, inner window 3, outer 9
  small_crd_3_9.npy    float64 CRD, inner 3, outer 9, λ = 1e-2
  small_slrx_4.npy     float64 SLRX, block_num 4 (block 6×6; 20 columns = 3 blocks, the last
                       holding columns 12..19)
  singular.npy         float32 16×16×10: bands 7..9 are exact combinations of bands 0..6 (values
                       on a 1/4096 grid with minimum exactly 0 and maximum exactly 1, so that the
                       min–max normalisation is the identity in f32 and f64 alike and the
                       covariance is singular in any precision); rank 7
  singular_grx.npy     float64 16×16 global RX of singular.npy (pseudo-inverse)
  chi2.json            scipy.stats.chi2.isf(p, df), df × p grid, full precision

Rerun from the repository root (deterministic, same bytes every time; numpy 2.4.6, scipy 1.17.1):

    python3 scripts/reference/hsi_detectors.py
    python3 scripts/reference/hsi_detectors.py --abu ../shared/data/hsi   # also the ABU AUCs

`--abu DIR` also scores the eight ABU scenes (DIR/abu-*.mat, keys `data` and `map`) and prints
pixel ROC AUCs (rank-based, ties get average ranks) and timings: global RX always, local RX and
CRD (3, 9) and SLRX (block_num 10) unless `--grx-only`.

Definitions (every detector first min–max normalises the whole cube to [0, 1]; a constant cube
is an error):
  GRX   μ, Σ over all N pixels, Σ unbiased (N − 1); score (x−μ)ᵀ Σ⁺ (x−μ) with
        Σ⁺ = np.linalg.pinv(Σ, rcond=1e-15, hermitian=True); no square root.
  LRX   background = pixels with |dr|, |dc| ≤ w_out//2 (clipped to the image) and not both
        |dr|, |dc| ≤ w_in//2; μ_b, Σ_b (K − 1); Σ_r = Σ_b + δI, δ = 1e-3·tr(Σ_b)/B + 1e-12;
        score (x−μ_b)ᵀ Σ_r⁻¹ (x−μ_b) by np.linalg.solve.
  CRD   same background as columns X_s (B×K); Γ = diag(‖x − x_i‖₂);
        α = (X_sᵀX_s + λΓ²)⁻¹ X_sᵀx; score ‖x − X_s α‖₂. When two or more background pixels
        equal x exactly (7 pixels of ABU urban-3) the matrix is singular; the residual is still
        unique (the null space lies in null(X_s)) and is 0, taken from np.linalg.lstsq.
  SLRX  b = H // block_num; pixel (r, c) is in block (min(r//b, H//b − 1), min(c//b, W//b − 1));
        three distances sqrt((x−μ)ᵀ(Σ + 1e-6 I)⁻¹(x−μ)), Σ unbiased, against (a) its own
        block, (b) the union of the existing 8-neighbour blocks, (c) all pixels; each map
        min–max normalised to [0, 1]; score = product of the three.
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np
import scipy.io
import scipy.stats

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "hsi_detectors"
SEED = 20240611

PINV_RCOND = 1e-15
LRX_RIDGE = 1e-3
SLRX_RIDGE = 1e-6


# ---------------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------------


def normalise(cube):
    """The whole cube to [0, 1] with one global minimum and maximum, in float64."""
    x = np.asarray(cube, dtype=np.float64)
    lo, hi = x.min(), x.max()
    if not hi > lo:
        raise ValueError("constant cube: min–max normalisation is undefined")
    return (x - lo) / (hi - lo)


def mean_cov(pixels):
    """Mean and unbiased covariance (divide by K − 1) of K pixels given as rows (K×B)."""
    k = pixels.shape[0]
    if k < 2:
        raise ValueError(f"{k} background pixels: the covariance needs at least 2")
    mu = pixels.mean(axis=0)
    d = pixels - mu
    return mu, d.T @ d / (k - 1)


def grx(cube):
    """Global RX: squared Mahalanobis distance to the scene's mean, pseudo-inverse covariance."""
    h, w, b = cube.shape
    x = normalise(cube).reshape(h * w, b)
    mu, cov = mean_cov(x)
    inv = np.linalg.pinv(cov, rcond=PINV_RCOND, hermitian=True)
    d = x - mu
    return np.einsum("ij,jk,ik->i", d, inv, d).reshape(h, w)


def dual_window(h, w, r, c, w_in, w_out):
    """Flat indices (row-major) of the background of pixel (r, c): the outer window clipped to
    the image, less the inner window."""
    if not (w_in % 2 == 1 and w_out % 2 == 1 and 0 < w_in < w_out):
        raise ValueError(f"windows must be odd with inner < outer, got ({w_in}, {w_out})")
    ro, ri = w_out // 2, w_in // 2
    rows = np.arange(max(0, r - ro), min(h, r + ro + 1))
    cols = np.arange(max(0, c - ro), min(w, c + ro + 1))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    keep = ~((np.abs(rr - r) <= ri) & (np.abs(cc - c) <= ri))
    return (rr[keep] * w + cc[keep]).ravel()


def lrx(cube, w_in, w_out):
    """Local (dual-window) RX with a ridge scaled to the background's mean variance."""
    h, w, b = cube.shape
    x = normalise(cube).reshape(h * w, b)
    eye = np.eye(b)
    out = np.empty(h * w)
    for r in range(h):
        for c in range(w):
            mu, cov = mean_cov(x[dual_window(h, w, r, c, w_in, w_out)])
            delta = LRX_RIDGE * np.trace(cov) / b + 1e-12
            d = x[r * w + c] - mu
            out[r * w + c] = d @ np.linalg.solve(cov + delta * eye, d)
    return out.reshape(h, w)


def crd(cube, w_in, w_out, lam=1e-2):
    """Collaborative-representation detector (Li & Du 2015): distance-weighted Tikhonov
    representation of the pixel by its dual-window background; score = residual norm."""
    h, w, b = cube.shape
    x = normalise(cube).reshape(h * w, b)
    out = np.empty(h * w)
    for r in range(h):
        for c in range(w):
            y = x[r * w + c]
            xs = x[dual_window(h, w, r, c, w_in, w_out)].T  # B×K
            gamma = np.linalg.norm(xs - y[:, None], axis=0)  # ‖y − x_i‖₂ for each column
            a = xs.T @ xs + lam * np.diag(gamma**2)
            try:
                alpha = np.linalg.solve(a, xs.T @ y)
            except np.linalg.LinAlgError:
                # Exactly singular only when ≥ 2 background pixels equal y (Γ_i = 0 with
                # X_s(e_i − e_j) = 0; the ABU scenes hold duplicated spectra). null(a) lies in
                # null(X_s), so every solution leaves the same residual (here 0): take one.
                alpha = np.linalg.lstsq(a, xs.T @ y, rcond=None)[0]
            out[r * w + c] = np.linalg.norm(y - xs @ alpha)
    return out.reshape(h, w)


def mahalanobis(pixels, background, ridge=SLRX_RIDGE):
    """sqrt((x−μ)ᵀ(Σ + ridge·I)⁻¹(x−μ)) of every row of `pixels` against `background`'s rows."""
    mu, cov = mean_cov(background)
    d = pixels - mu
    q = np.einsum("ij,ji->i", d, np.linalg.solve(cov + ridge * np.eye(cov.shape[0]), d.T))
    if (q < 0).any():
        raise ArithmeticError("negative quadratic form against a positive definite matrix")
    return np.sqrt(q)


def min_max(scores):
    lo, hi = scores.min(), scores.max()
    if not hi > lo:
        raise ValueError("constant score map: min–max normalisation is undefined")
    return (scores - lo) / (hi - lo)


def slrx(cube, block_num=10):
    """Simplified local RX (FERD authors): product of the min–max normalised Mahalanobis
    distances to the own block, the 8 neighbouring blocks, and the whole scene."""
    h, w, b = cube.shape
    size = h // block_num
    if size < 1 or w < size:
        raise ValueError(f"block_num {block_num} gives no full block in {h}×{w}")
    nbr, nbc = h // size, w // size
    x = normalise(cube)
    block_r = np.minimum(np.arange(h) // size, nbr - 1)
    block_c = np.minimum(np.arange(w) // size, nbc - 1)

    def pixels_of(blocks):
        sel = np.zeros((h, w), dtype=bool)
        for i, j in blocks:
            sel |= (block_r == i)[:, None] & (block_c == j)[None, :]
        return x[sel]

    own = np.empty((h, w))
    neighbours = np.empty((h, w))
    for i in range(nbr):
        for j in range(nbc):
            inside = (block_r == i)[:, None] & (block_c == j)[None, :]
            pix = x[inside]
            own[inside] = mahalanobis(pix, pix)
            around = [(i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)
                      if (di, dj) != (0, 0) and 0 <= i + di < nbr and 0 <= j + dj < nbc]
            if not around:
                raise ValueError("a single block has no neighbours")
            neighbours[inside] = mahalanobis(pix, pixels_of(around))
    flat = x.reshape(h * w, b)
    scene = mahalanobis(flat, flat).reshape(h, w)
    return min_max(own) * min_max(neighbours) * min_max(scene)


def roc_auc(scores, labels):
    """Pixel ROC AUC as the Mann–Whitney statistic; tied scores get average ranks."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(labels).ravel() != 0
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both classes")
    ranks = scipy.stats.rankdata(s, method="average")
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def smooth_spectra(rng, count, bands, lo, hi):
    """`count` smooth spectra: sums of three random Gaussian bumps over the band axis."""
    t = np.linspace(0.0, 1.0, bands)
    out = np.empty((count, bands))
    for k in range(count):
        s = np.zeros(bands)
        for _ in range(3):
            s += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((t - rng.uniform(0, 1)) / rng.uniform(0.1, 0.4)) ** 2)
        out[k] = lo + (hi - lo) * (s - s.min()) / (s.max() - s.min())
    return out


def small_scene(rng, h=24, w=20, b=12, targets=((0, 9), (6, 4), (13, 14), (21, 18))):
    """Linear mixture background with spatially varying Dirichlet abundances, plus noise, and
    sub-pixel targets 0.3·target + 0.7·(the background pixel there)."""
    endmembers = smooth_spectra(rng, 4, b, 0.15, 0.85)
    centres = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    cube = np.empty((h, w, b))
    for r in range(h):
        for c in range(w):
            alpha = [1.0 + 4.0 * np.exp(-((r - cr) ** 2 + (c - ccn) ** 2) / (2 * 8.0**2))
                     for cr, ccn in centres]
            cube[r, c] = rng.dirichlet(alpha) @ endmembers
    cube += rng.normal(0.0, 0.01, cube.shape)
    target = 0.5 + 0.4 * np.sin(np.linspace(0, 3 * np.pi, b))
    labels = np.zeros((h, w), dtype=np.uint8)
    for r, c in targets:
        cube[r, c] = 0.3 * target + 0.7 * cube[r, c]
        labels[r, c] = 1
    return cube.astype(np.float32), labels


def singular_scene(rng, h=16, w=16):
    """Ten bands on a 1/4096 grid; bands 7, 8, 9 are exact (in f32) combinations of 0..6."""
    base = smooth_spectra(rng, 3, 7, 0.1, 0.9)
    ab = rng.dirichlet([1.0, 1.0, 1.0], size=(h, w))
    x = ab @ base + rng.normal(0.0, 0.03, (h, w, 7))
    x = np.clip(np.round(x * 1024) / 1024, 0.0, 1.0)
    x[0, 0, 0], x[h - 1, w - 1, 1] = 0.0, 1.0  # the global minimum and maximum, exactly
    extra = np.stack([
        (x[..., 0] + x[..., 1]) / 2,
        (x[..., 2] + x[..., 3] + 2 * x[..., 4]) / 4,
        (3 * x[..., 5] + x[..., 6]) / 4,
    ], axis=-1)
    cube = np.concatenate([x, extra], axis=-1).astype(np.float32)
    assert cube.min() == 0.0 and cube.max() == 1.0
    c64 = cube.astype(np.float64)
    assert np.array_equal(c64[..., 7], (c64[..., 0] + c64[..., 1]) / 2)  # exact in f32
    return cube


def chi2_table():
    dfs = [1, 2, 5, 10, 50, 100, 188, 200, 205, 1000]
    ps = [1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-9]
    return [{"df": df, "p": p, "quantile": float(scipy.stats.chi2.isf(p, df))}
            for df in dfs for p in ps]


def check_sum_identity(name, scores, rank):
    """Σ_i (x_i−μ)ᵀΣ⁺(x_i−μ) = (N − 1)·rank(Σ) for the scene's own unbiased covariance."""
    n = scores.size
    want = (n - 1) * rank
    assert abs(scores.sum() - want) <= 1e-8 * want, f"{name}: sum {scores.sum()} != {want}"


def write_fixtures():
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    small, labels = small_scene(rng)
    singular = singular_scene(rng)

    small_grx = grx(small)
    check_sum_identity("small GRX", small_grx, small.shape[2])
    singular_grx = grx(singular)
    check_sum_identity("singular GRX", singular_grx, 7)

    maps = {
        "small.npy": small,
        "small_labels.npy": labels,
        "small_grx.npy": small_grx,
        "small_lrx_3_9.npy": lrx(small, 3, 9),
        "small_crd_3_9.npy": crd(small, 3, 9, lam=1e-2),
        "small_slrx_4.npy": slrx(small, block_num=4),
        "singular.npy": singular,
        "singular_grx.npy": singular_grx,
    }
    for name, array in maps.items():
        np.save(OUT / name, array)
    (OUT / "chi2.json").write_text(json.dumps(chi2_table(), indent=1) + "\n")

    total = 0
    for path in sorted(OUT.iterdir()):
        total += path.stat().st_size
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size} B")
    print(f"total {total} B")
    for name in ("small_grx.npy", "small_lrx_3_9.npy", "small_crd_3_9.npy", "small_slrx_4.npy"):
        print(f"{name}: AUC on small_labels {roc_auc(maps[name], labels):.4f}")


# ---------------------------------------------------------------------------------------------
# ABU scenes
# ---------------------------------------------------------------------------------------------

ABU_GRX_AUC = {
    "abu-beach-1": 0.9807, "abu-beach-2": 0.9106, "abu-beach-3": 0.9998, "abu-urban-1": 0.9907,
    "abu-urban-2": 0.9946, "abu-urban-3": 0.9513, "abu-urban-4": 0.9887, "abu-urban-5": 0.9692,
}


def abu(folder, grx_only):
    detectors = [("GRX", grx)]
    if not grx_only:
        detectors += [
            ("LRX(3,9)", lambda c: lrx(c, 3, 9)),
            ("CRD(3,9)", lambda c: crd(c, 3, 9, lam=1e-2)),
            ("SLRX(10)", lambda c: slrx(c, block_num=10)),
        ]
    all_ok = True
    for name, published in ABU_GRX_AUC.items():
        mat = scipy.io.loadmat(pathlib.Path(folder) / f"{name}.mat")
        cube, labels = mat["data"], mat["map"]
        parts = []
        for det_name, det in detectors:
            start = time.perf_counter()
            scores = det(cube)
            seconds = time.perf_counter() - start
            auc = roc_auc(scores, labels)
            if det_name == "GRX":
                ok = abs(auc - published) < 1e-3
                all_ok &= ok
                parts.append(f"GRX {auc:.4f} (published {published:.4f}, "
                             f"{'ok' if ok else 'DIFFERS'}) {seconds:.2f} s")
            else:
                parts.append(f"{det_name} {auc:.4f} {seconds:.2f} s")
        print(f"{name} {'×'.join(map(str, cube.shape))}: " + "; ".join(parts), flush=True)
    print("GRX reproduces every published AUC to 1e-3" if all_ok else "GRX AUC MISMATCH")
    return all_ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--abu", metavar="DIR", help="also score the ABU scenes in DIR")
    parser.add_argument("--grx-only", action="store_true", help="with --abu: only global RX")
    args = parser.parse_args()
    write_fixtures()
    if args.abu and not abu(args.abu, args.grx_only):
        sys.exit(1)


if __name__ == "__main__":
    main()
