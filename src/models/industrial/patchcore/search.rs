//! Exact nearest-neighbour search of a frame's patch features in the memory bank.
//!
//! Distances come from one matrix product per block of bank rows,
//! ‖q − b‖² = ‖q‖² + ‖b‖² − 2 q·b, with the products on faer's packed SIMD kernels: a frame's
//! 784 patches against a bank of thousands is a few hundred million multiply-adds, which a
//! loop per patch would run at a fraction of the speed. Bank norms are computed once at load;
//! blocks bound the scratch (`queries × BLOCK` values) whatever the bank's size.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Bank rows per product: 784 queries × 2048 rows × 4 bytes is 6.4 MB of scratch.
const BLOCK: usize = 2048;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    #[error(
        "memory bank is empty or its {values} values are not a whole number of {dim}-value rows"
    )]
    Bank { values: usize, dim: usize },
    #[error("{what} holds {got} values, expected {expected}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// The bank, its row norms and the product scratch.
#[derive(Debug, Clone)]
pub struct NearestNeighbours {
    bank: Vec<f32>,
    norms: Vec<f32>,
    dim: usize,
    products: Vec<f32>,
    query_norms: Vec<f32>,
    par: Par,
}

fn squared_norm(row: &[f32]) -> f32 {
    row.iter().map(|v| v * v).sum()
}

impl NearestNeighbours {
    /// A searcher over `bank` (`rows × dim`, row-major), running its products on `threads`
    /// threads (1: the calling thread only).
    pub fn new(bank: Vec<f32>, dim: usize, threads: usize) -> Result<Self, SearchError> {
        if dim == 0 || bank.is_empty() || !bank.len().is_multiple_of(dim) {
            return Err(SearchError::Bank {
                values: bank.len(),
                dim,
            });
        }
        let norms = bank.chunks_exact(dim).map(squared_norm).collect();
        let par = match std::num::NonZeroUsize::new(threads) {
            Some(n) if n.get() > 1 => Par::Rayon(n),
            _ => Par::Seq,
        };
        Ok(Self {
            bank,
            norms,
            dim,
            products: Vec::new(),
            query_norms: Vec::new(),
            par,
        })
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bank row `index`.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.bank[index * self.dim..(index + 1) * self.dim]
    }

    /// For each query row (`queries`: `n × dim`), the Euclidean distance to its nearest bank row
    /// into `distances` and that row's index into `nearest` (both `n` long).
    pub fn search(
        &mut self,
        queries: &[f32],
        distances: &mut [f32],
        nearest: &mut [u32],
    ) -> Result<(), SearchError> {
        let dim = self.dim;
        let n = distances.len();
        for (what, got, expected) in [
            ("queries", queries.len(), n * dim),
            ("nearest", nearest.len(), n),
        ] {
            if got != expected {
                return Err(SearchError::Length {
                    what,
                    expected,
                    got,
                });
            }
        }
        self.query_norms.clear();
        self.query_norms
            .extend(queries.chunks_exact(dim).map(squared_norm));
        distances.fill(f32::INFINITY);
        nearest.fill(0);
        let lhs = MatRef::from_row_major_slice(queries, n, dim);
        for (block, start) in (0..self.len()).step_by(BLOCK).enumerate() {
            let rows = BLOCK.min(self.len() - start);
            self.products.resize(n * rows, 0.0);
            let bank = MatRef::from_row_major_slice(
                &self.bank[start * dim..(start + rows) * dim],
                rows,
                dim,
            );
            matmul(
                MatMut::from_row_major_slice_mut(&mut self.products, n, rows),
                Accum::Replace,
                lhs,
                bank.transpose(),
                1.0f32,
                self.par,
            );
            let norms = &self.norms[start..start + rows];
            for (query, products) in self.products.chunks_exact(rows).enumerate() {
                let query_norm = self.query_norms[query];
                let (mut best, mut best_index) = (f32::INFINITY, 0usize);
                for (j, (&product, &norm)) in products.iter().zip(norms).enumerate() {
                    let d = query_norm + norm - 2.0 * product;
                    if d < best {
                        best = d;
                        best_index = j;
                    }
                }
                // Squared distances here; the root is taken once at the end.
                if best < distances[query] || block == 0 {
                    distances[query] = best;
                    nearest[query] = (start + best_index) as u32;
                }
            }
        }
        // Rounding can make a near-zero distance slightly negative.
        for d in distances.iter_mut() {
            *d = d.max(0.0).sqrt();
        }
        Ok(())
    }

    /// The `k` bank rows nearest to bank row `index` (itself first), by exact distance.
    pub fn bank_neighbours(&self, index: usize, k: usize) -> Vec<usize> {
        let centre = self.row(index);
        let mut ranked: Vec<(f32, usize)> = self
            .bank
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(j, row)| (squared_distance(centre, row), j))
            .collect();
        let k = k.clamp(1, ranked.len());
        // Ties (duplicate rows) keep `index` first: its distance is exactly 0.
        ranked.select_nth_unstable_by(k - 1, |a, b| {
            a.0.total_cmp(&b.0)
                .then((a.1 != index).cmp(&(b.1 != index)))
        });
        ranked.truncate(k);
        ranked.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then((a.1 != index).cmp(&(b.1 != index)))
        });
        ranked.into_iter().map(|(_, j)| j).collect()
    }
}

/// ‖a − b‖², summed directly (exact for a handful of rows, no cancellation).
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect()
    }

    /// Against a loop per query over every row, on a bank spanning several blocks.
    #[test]
    fn blocked_products_find_the_same_neighbours_as_a_plain_loop() {
        let dim = 24;
        let bank = random((BLOCK * 2 + 77) * dim, 1);
        let queries = random(50 * dim, 2);
        let mut search = NearestNeighbours::new(bank.clone(), dim, 1).unwrap();
        let (mut distances, mut nearest) = (vec![0.0; 50], vec![0; 50]);
        search
            .search(&queries, &mut distances, &mut nearest)
            .unwrap();
        for (q, query) in queries.chunks_exact(dim).enumerate() {
            let (best, index) = bank
                .chunks_exact(dim)
                .enumerate()
                .map(|(j, row)| (squared_distance(query, row), j))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap();
            assert!((distances[q] - best.sqrt()).abs() < 1e-4, "query {q}");
            let found = squared_distance(query, search.row(nearest[q] as usize));
            assert!(
                (found - best).abs() < 1e-4,
                "query {q}: row {} vs {index}",
                nearest[q]
            );
        }
        // Two threads give the same answer.
        let mut threaded = NearestNeighbours::new(bank, dim, 2).unwrap();
        let (mut d2, mut n2) = (vec![0.0; 50], vec![0; 50]);
        threaded.search(&queries, &mut d2, &mut n2).unwrap();
        assert_eq!(n2, nearest);
    }

    #[test]
    fn a_bank_row_is_its_own_first_neighbour_and_bad_sizes_are_refused() {
        let dim = 3;
        let bank = vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 5.0, 0.0, 0.0, 1.5, 0.0, 0.0];
        let search = NearestNeighbours::new(bank, dim, 1).unwrap();
        assert_eq!(search.bank_neighbours(1, 3), vec![1, 3, 0]);
        assert_eq!(search.bank_neighbours(2, 10), vec![2, 3, 1, 0]);
        assert!(NearestNeighbours::new(vec![1.0; 5], 3, 1).is_err());
        assert!(NearestNeighbours::new(vec![], 3, 1).is_err());
        let mut search = search;
        let err = search
            .search(&[0.0; 5], &mut [0.0; 2], &mut [0; 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("queries holds 5 values, expected 6"), "{err}");
    }
}
