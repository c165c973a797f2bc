//! Checks the log-mel front end against the NumPy reference in `tests/fixtures/mel`, written by
//! `scripts/reference/yamnet_features.py mel-fixtures` (float64 NumPy from float32 input).
//!
//! Tolerances, and why:
//!
//! * Mel matrix: both compute it in f64; vigil stores it as f32. `MATRIX_TOL` = 1e-6 is a few
//!   f32 ulps of weights at most 1.
//! * Log-mel values: vigil computes the FFT, magnitudes and mel sums in f64 like the reference
//!   and rounds the log to f32, so the two differ only by f64 rounding (~1e-12 even for quiet
//!   bands beside loud ones; FFT algorithms and libm `ln` differ between platforms at that level)
//!   and by at most one f32 rounding step of the result (4.8e-7 for |x| in [4, 8)). Measured
//!   maximum over all fixtures on x86-64: 0. `LOG_MEL_TOL` = 1e-5 (20 f32 steps at the largest
//!   values) leaves room for other platforms yet catches real mistakes, which show as 1e-3 (an
//!   f32 FFT), 1e-2 and more (a wrong window or filter slope) or ln 2 = 0.69 (power instead of
//!   magnitude).
//! * Quantized patches (what the int8 model sees): q = round(x / 0.0479) + 144 turns a 1e-5
//!   difference into 2e-4 of a step, so q can only differ where the reference value lies within
//!   `LOG_MEL_TOL` of a rounding boundary. The test allows a ±1 difference exactly there and
//!   nowhere else, and requires such cases to stay below 0.1 % of the values (measured: none).

use std::path::{Path, PathBuf};

use vigil::io::npy::{NpyArray, read_npy};
use vigil::prepare::mel::{LogMel, LogMelConfig, PatchStream, log_mel, quantize_u8};

const MATRIX_TOL: f32 = 1e-6;
const LOG_MEL_TOL: f32 = 1e-5;
const MAX_TIE_FRACTION: f64 = 1e-3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mel")
}

struct Manifest {
    scale: f32,
    zero_point: u8,
    /// (name, unpadded frames, padded frames, patches)
    signals: Vec<(String, usize, usize, usize)>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let q = &v["quantization"];
    let signals = v["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_u64().unwrap() as usize;
            (
                s["name"].as_str().unwrap().to_owned(),
                n("unpadded_frames"),
                n("frames"),
                n("patches"),
            )
        })
        .collect::<Vec<_>>();
    assert!(
        signals.len() >= 4,
        "manifest lists {} signals",
        signals.len()
    );
    Manifest {
        scale: q["scale"].as_f64().unwrap() as f32,
        zero_point: u8::try_from(q["zero_point"].as_u64().unwrap()).unwrap(),
        signals,
    }
}

fn load<T: vigil::io::npy::NpyElement>(name: &str) -> NpyArray<T> {
    read_npy::<T>(fixtures().join(name)).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn mel_matrix_matches_reference() {
    let expected = load::<f32>("mel_matrix.npy");
    assert_eq!(expected.shape, vec![257, 64]);
    let ours = LogMel::new(LogMelConfig::yamnet()).unwrap().mel_matrix();
    let diff = max_abs_diff(&ours, &expected.data);
    eprintln!("mel matrix max abs diff {diff:e}");
    assert!(diff <= MATRIX_TOL, "mel matrix differs by {diff}");
}

#[test]
fn batch_log_mel_matches_reference() {
    let m = manifest();
    let mut worst = 0.0f32;
    for (name, unpadded, _, _) in &m.signals {
        let input = load::<f32>(&format!("{name}_input.npy"));
        let expected = load::<f32>(&format!("{name}_frames.npy"));
        let frames = log_mel(&input.data).unwrap();
        assert_eq!(frames.len(), *unpadded, "{name}");
        let flat: Vec<f32> = frames.iter().flatten().copied().collect();
        // The padded reference starts with the frames of the unpadded input.
        let diff = max_abs_diff(&flat, &expected.data[..flat.len()]);
        eprintln!("{name}: {unpadded} frames, max abs diff {diff:e}");
        assert!(diff <= LOG_MEL_TOL, "{name}: log-mel differs by {diff}");
        worst = worst.max(diff);
    }
    eprintln!("batch log-mel: worst max abs diff {worst:e}");
}

/// How far `x / scale` is from the nearest rounding boundary (a half-integer), in feature units.
fn distance_to_tie(x: f32, scale: f32) -> f32 {
    let r = x / scale;
    ((r - r.floor()) - 0.5).abs() * scale
}

#[test]
fn streamed_patches_match_reference() {
    let m = manifest();
    let (mut values, mut ties, mut worst) = (0usize, 0usize, 0.0f32);
    for (name, _, padded_frames, n_patches) in &m.signals {
        let input = load::<f32>(&format!("{name}_input.npy"));
        let frames = load::<f32>(&format!("{name}_frames.npy"));
        let expected_q = load::<u8>(&format!("{name}_patches_u8.npy"));
        assert_eq!(frames.shape, vec![*padded_frames, 64]);
        assert_eq!(expected_q.shape, vec![*n_patches, 96, 64]);
        // Odd chunk sizes so that frame and patch boundaries fall inside chunks.
        for chunk in [1usize, 7919] {
            let mut stream = PatchStream::new(LogMelConfig::yamnet()).unwrap();
            let mut got: Vec<(u64, Vec<f32>)> = Vec::new();
            let mut collect = |p: vigil::prepare::mel::Patch<'_>| {
                assert_eq!((p.frames, p.bands), (96, 64));
                got.push((p.start_sample, p.data.to_vec()));
            };
            for c in input.data.chunks(chunk) {
                stream.push(c, &mut collect);
            }
            stream.finish(&mut collect);
            assert_eq!(got.len(), *n_patches, "{name} chunk {chunk}");
            let patch_len = 96 * 64;
            let mut q = vec![0u8; patch_len];
            for (i, (start, data)) in got.iter().enumerate() {
                assert_eq!(*start, i as u64 * 48 * 160, "{name} patch {i}");
                let reference = &frames.data[i * 48 * 64..i * 48 * 64 + patch_len];
                let diff = max_abs_diff(data, reference);
                assert!(diff <= LOG_MEL_TOL, "{name} patch {i}: differs by {diff}");
                worst = worst.max(diff);
                if chunk != 1 {
                    continue;
                }
                quantize_u8(data, m.scale, m.zero_point, &mut q).unwrap();
                let expected = &expected_q.data[i * patch_len..(i + 1) * patch_len];
                for (j, (&a, &b)) in q.iter().zip(expected).enumerate() {
                    values += 1;
                    if a == b {
                        continue;
                    }
                    let x = reference[j];
                    let near_tie = distance_to_tie(x, m.scale) <= LOG_MEL_TOL;
                    assert!(
                        a.abs_diff(b) == 1 && near_tie,
                        "{name} patch {i} value {j}: q {a} vs reference {b} for x = {x}"
                    );
                    ties += 1;
                }
            }
        }
    }
    let fraction = ties as f64 / values as f64;
    eprintln!(
        "patches: worst max abs diff {worst:e}; quantized: {ties} of {values} values differ by 1 \
         at rounding boundaries ({fraction:e})"
    );
    assert!(
        fraction <= MAX_TIE_FRACTION,
        "{ties} of {values} quantized values differ"
    );
}
