//! The fixed "local" attention kernel of MAVD's encoders (papers.md §2.2).
//!
//! `A[i, j] = exp(−|i − j| / e)` over snippet positions, divided column-wise: the authors'
//! `attn2 / attn2.sum(-1)` broadcasts the row sums along the last axis, so entry `(i, j)` is
//! divided by the sum of row `j`. Rows therefore do not sum to one near the ends of the
//! sequence. The published weights were trained with this kernel, so it is reproduced as is.

/// `e` as the authors' code computes it (`torch.exp(torch.tensor(1.))`, a float32).
const E_F32: f32 = std::f32::consts::E;

/// The `len × len` kernel, row-major, computed in f32 as the authors' code does.
pub fn distance_kernel(len: usize) -> Vec<f32> {
    let mut kernel = Vec::with_capacity(len * len);
    for i in 0..len {
        for j in 0..len {
            let distance = (i as f32 - j as f32).abs();
            kernel.push((-distance / E_F32).exp());
        }
    }
    // Row sums, then each column j divided by row j's sum (the broadcasting quirk).
    let row_sums: Vec<f32> = kernel
        .chunks(len.max(1))
        .map(|row| row.iter().sum())
        .collect();
    for row in kernel.chunks_mut(len.max(1)) {
        for (value, sum) in row.iter_mut().zip(&row_sums) {
            *value /= sum;
        }
    }
    kernel
}

/// The kernel of `len` positions written into the top-left corner of a `capacity ×
/// capacity` zero matrix: the form the windowed ONNX graph takes, where the positions past
/// `len` are padding that no valid position may read.
pub fn padded_distance_kernel(len: usize, capacity: usize) -> Vec<f32> {
    let kernel = distance_kernel(len);
    let mut padded = vec![0.0; capacity * capacity];
    for (i, row) in kernel.chunks(len.max(1)).enumerate().take(capacity) {
        let width = len.min(capacity);
        padded[i * capacity..i * capacity + width].copy_from_slice(&row[..width]);
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_divided_by_the_sum_of_the_column_index_row() {
        let len = 5;
        let kernel = distance_kernel(len);
        let raw = |i: usize, j: usize| (-((i as f32 - j as f32).abs()) / E_F32).exp();
        for i in 0..len {
            for j in 0..len {
                let row_j: f32 = (0..len).map(|k| raw(j, k)).sum();
                assert!((kernel[i * len + j] - raw(i, j) / row_j).abs() < 1e-7);
            }
        }
        // Interior rows lose mass to their neighbours' larger sums: not a stochastic matrix.
        let first_row: f32 = kernel[..len].iter().sum();
        assert!((first_row - 1.0).abs() > 1e-3, "row 0 sums to {first_row}");
    }

    #[test]
    fn padded_kernel_keeps_the_short_kernel_and_zeroes_the_rest() {
        let padded = padded_distance_kernel(3, 5);
        let short = distance_kernel(3);
        for i in 0..5 {
            for j in 0..5 {
                let expected = if i < 3 && j < 3 {
                    short[i * 3 + j]
                } else {
                    0.0
                };
                assert_eq!(padded[i * 5 + j], expected, "({i}, {j})");
            }
        }
        assert!(distance_kernel(0).is_empty());
    }
}
