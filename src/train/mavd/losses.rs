//! MAVD's training losses as the authors' `losses.py` / `train.py` compute them (papers.md
//! §2.3, §2.4).

use burn::prelude::*;

/// Snippets per top-k step: a bag of `n` valid snippets averages its `⌊n/16⌋ + 1` highest.
pub const TOP_K_DIVISOR: usize = 16;
/// Clamp of the score-consistency cross-entropy.
const CONSISTENCY_EPSILON: f32 = 1e-6;
/// `TripletMarginLoss(margin = 5)`.
pub const TRIPLET_MARGIN: f32 = 5.0;
/// `torch.nn.functional.pairwise_distance`'s epsilon, added to the difference.
const PAIRWISE_EPSILON: f32 = 1e-6;

/// `k` of the top-k bag score for `valid` snippets.
pub fn top_k(valid: usize) -> usize {
    valid / TOP_K_DIVISOR + 1
}

/// Bag scores `[B]`: the mean of the top-k scores over each bag's valid length.
pub fn bag_scores(scores: Tensor<2>, valid: &[usize]) -> Tensor<1> {
    let bags: Vec<Tensor<1>> = valid
        .iter()
        .enumerate()
        .map(|(bag, &length)| {
            let length = length.max(1);
            let row = scores.clone().slice([bag..bag + 1, 0..length]);
            row.topk(top_k(length).min(length), 1)
                .mean_dim(1)
                .reshape([1])
        })
        .collect();
    Tensor::cat(bags, 0)
}

/// `nn.BCELoss` (mean). PyTorch floors each log at −100 and differentiates in closed form;
/// here the probabilities are floored at the smallest normal f32 before the log instead, so
/// that a saturated sigmoid (exactly 0 or 1, which f32 reaches at logits beyond ±17) gives a
/// finite loss and a finite gradient rather than `0 · ∞`. The two agree for every
/// probability between 1e-38 and 1 − 1e-38.
pub fn binary_cross_entropy(predictions: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    let floor = f32::MIN_POSITIVE;
    let log_p = predictions.clone().clamp_min(floor).log();
    let log_not_p = predictions.neg().add_scalar(1.0).clamp_min(floor).log();
    let terms = targets.clone() * log_p + targets.neg().add_scalar(1.0) * log_not_p;
    terms.mean().neg()
}

/// The greedy channel matching of `losses.match_sparsify`, redone on every batch.
///
/// `video` is `[samples, video_channels]`, `other` `[samples, other_channels]` (row-major,
/// `other_channels ≤ video_channels`). Each channel's column is L2-normalised over the
/// samples; `S = otherᵀ·video` holds their cosine similarities. Other-channel `i`, in index
/// order, takes the most similar video channel not yet taken; the video channels left over
/// follow in ascending order. Returns that arrangement `ext` (a permutation of the video
/// channels, length `video_channels`).
pub fn match_channels(
    video: &[f32],
    video_channels: usize,
    other: &[f32],
    other_channels: usize,
) -> Vec<usize> {
    let samples = video.len().checked_div(video_channels).unwrap_or(0);
    let norms = |values: &[f32], channels: usize| -> Vec<f32> {
        (0..channels)
            .map(|c| {
                let sum: f32 = (0..samples).map(|s| values[s * channels + c].powi(2)).sum();
                // F.normalize's eps: a silent (all-zero) channel stays zero.
                sum.sqrt().max(1e-12)
            })
            .collect()
    };
    let (video_norms, other_norms) = (norms(video, video_channels), norms(other, other_channels));
    let mut taken = vec![false; video_channels];
    let mut ext = Vec::with_capacity(video_channels);
    for i in 0..other_channels.min(video_channels) {
        let mut similarity: Vec<(f32, usize)> = (0..video_channels)
            .map(|j| {
                let dot: f32 = (0..samples)
                    .map(|s| other[s * other_channels + i] * video[s * video_channels + j])
                    .sum();
                (dot / (other_norms[i] * video_norms[j]), j)
            })
            .collect();
        // Descending similarity; equal ones in channel order, as a stable sort gives.
        similarity.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(&(_, j)) = similarity.iter().find(|(_, j)| !taken[*j]) {
            taken[j] = true;
            ext.push(j);
        }
    }
    ext.extend((0..video_channels).filter(|&j| !taken[j]));
    ext
}

/// `padded[..., ext]`: `other` `[B, T, m]` zero-padded to `ext.len()` channels and gathered by
/// `ext`. Position `j` takes padded channel `ext[j]`, so other-channel `c` lands where
/// `ext[j] = c`, at `ext⁻¹(c)`: the inverse of the matching just computed (unless `ext` is its
/// own inverse). This is what the authors' code does, and their weights were trained so; it
/// is reproduced on purpose.
pub fn sparsify(other: Tensor<3>, ext: &[usize]) -> Tensor<3> {
    let [batch, snippets, channels] = other.dims();
    let device = other.device();
    let padded = if ext.len() > channels {
        Tensor::cat(
            vec![
                other,
                Tensor::zeros([batch, snippets, ext.len() - channels], &device),
            ],
            2,
        )
    } else {
        other
    };
    let indices: Vec<i64> = ext.iter().map(|&j| j as i64).collect();
    let indices = Tensor::<1, Int>::from_data(TensorData::new(indices, [ext.len()]), &device);
    padded.select(2, indices)
}

/// `Σ_b mean_t (1 − cos(x_bt, y_bt))`, the cosine as PyTorch's `cosine_similarity` forms it:
/// `x·y / sqrt(max(‖x‖²·‖y‖², 1e-16))`. Clamping before the root also keeps the gradient finite
/// for the all-zero vectors a ReLU output often is.
pub fn cosine_distance(x: Tensor<3>, y: Tensor<3>) -> Tensor<1> {
    let dot = (x.clone() * y.clone()).sum_dim(2);
    let squared_norms = x.powi_scalar(2).sum_dim(2) * y.powi_scalar(2).sum_dim(2);
    let cosine = dot / squared_norms.clamp_min(1e-16).sqrt();
    let [batch, snippets, _] = cosine.dims();
    cosine
        .reshape([batch, snippets])
        .neg()
        .add_scalar(1.0)
        .mean_dim(1)
        .sum()
}

/// `H(q, p) = −mean[p·log q + (1 − p)·log(1 − q)]` with both clamped to [1e-6, 1 − 1e-6].
pub fn consistency(q: Tensor<2>, p: Tensor<2>) -> Tensor<1> {
    let q = q.clamp(CONSISTENCY_EPSILON, 1.0 - CONSISTENCY_EPSILON);
    let p = p.clamp(CONSISTENCY_EPSILON, 1.0 - CONSISTENCY_EPSILON);
    let terms =
        p.clone() * q.clone().log() + p.neg().add_scalar(1.0) * q.neg().add_scalar(1.0).log();
    terms.mean().neg()
}

/// `[B, T]` with the positions at or past each bag's valid length set to 0.
pub fn zero_padding(scores: Tensor<2>, valid: &[usize]) -> Tensor<2> {
    let [batch, snippets] = scores.dims();
    let mask: Vec<f32> = (0..batch)
        .flat_map(|b| (0..snippets).map(move |t| if t < valid[b] { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_data(TensorData::new(mask, [batch, snippets]), &scores.device());
    scores * mask
}

/// `x / max(‖x‖, 1e-12)`, clamped before the root so that a zero vector has a finite gradient.
fn unit(x: Tensor<1>) -> Tensor<1> {
    let norm = x.clone().powi_scalar(2).sum().clamp_min(1e-24).sqrt();
    x / norm
}

/// The triplet term on the fused features `[B, T, D]` (L2-normalised per snippet):
/// anchor = mean over normal bags of their valid snippets' mean; positive / negative = mean
/// over violent bags of the mean of their k lowest / highest-scored snippets. The three are
/// normalised to unit length, then `max(‖a − p‖ − ‖a − n‖ + 5, 0)`. `None` when the batch holds
/// one class only (the authors skip the term then).
pub fn triplet(
    features: Tensor<3>,
    scores: Tensor<2>,
    valid: &[usize],
    violent: &[bool],
) -> Option<Tensor<1>> {
    if !violent.iter().any(|v| *v) || violent.iter().all(|v| *v) {
        return None;
    }
    let [_, _, width] = features.dims();
    let norms = features
        .clone()
        .powi_scalar(2)
        .sum_dim(2)
        .clamp_min(1e-24)
        .sqrt();
    let features = features / norms;
    let bag = |b: usize| {
        features
            .clone()
            .slice([b..b + 1, 0..valid[b].max(1)])
            .reshape([valid[b].max(1), width])
    };
    let mut anchors = Vec::new();
    let (mut lows, mut highs) = (Vec::new(), Vec::new());
    for (b, &is_violent) in violent.iter().enumerate() {
        let length = valid[b].max(1);
        if !is_violent {
            anchors.push(bag(b).mean_dim(0).reshape([width]));
            continue;
        }
        let k = top_k(length).min(length);
        let row = scores
            .clone()
            .slice([b..b + 1, 0..length])
            .reshape([length]);
        let order = row.argsort(0);
        let lowest = order.clone().narrow(0, 0, k);
        let highest = order.narrow(0, length - k, k);
        lows.push(bag(b).select(0, lowest).mean_dim(0).reshape([width]));
        highs.push(bag(b).select(0, highest).mean_dim(0).reshape([width]));
    }
    // Both classes are present, so none of the three lists is empty.
    let mean =
        |vectors: Vec<Tensor<1>>| unit(Tensor::stack::<2>(vectors, 0).mean_dim(0).reshape([width]));
    let (anchor, positive, negative) = (mean(anchors), mean(lows), mean(highs));
    let distance = |a: Tensor<1>, b: Tensor<1>| {
        (a - b)
            .add_scalar(PAIRWISE_EPSILON)
            .powi_scalar(2)
            .sum()
            .sqrt()
    };
    let hinge = distance(anchor.clone(), positive) - distance(anchor, negative);
    Some(hinge.add_scalar(TRIPLET_MARGIN).clamp_min(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_greedy_in_channel_order_and_fills_ascending() {
        // 3 samples, 4 video channels, 2 other channels. Other 0 is most like video 2, then
        // video 0; other 1 is most like video 2 too, which is taken, so it gets video 3.
        let video = [
            1.0, 0.0, 1.0, 0.0, //
            0.0, 1.0, 1.0, 1.0, //
            0.0, 0.0, 0.0, 1.0,
        ];
        let other = [
            1.0, 0.5, //
            1.0, 1.0, //
            0.0, 0.5,
        ];
        let ext = match_channels(&video, 4, &other, 2);
        assert_eq!(ext, vec![2, 3, 0, 1]);
    }

    #[test]
    fn sparsify_places_each_channel_at_the_inverse_of_its_match() {
        let device = Device::flex();
        // One sample with other channels [10, 20]; ext = [2, 0, 1, 3] (not an involution).
        let other =
            Tensor::<3>::from_data(TensorData::new(vec![10.0f32, 20.0], [1, 1, 2]), &device);
        let out: Vec<f32> = sparsify(other, &[2, 0, 1, 3])
            .into_data()
            .try_to_vec()
            .unwrap();
        // Position j takes padded channel ext[j]: [pad, 10, 20, pad]. Channel 0 was matched
        // to video channel 2 but sits at ext⁻¹(0) = 1.
        assert_eq!(out, vec![0.0, 10.0, 20.0, 0.0]);
    }

    #[test]
    fn bag_scores_average_the_top_k_of_the_valid_part() {
        let device = Device::flex();
        let mut values = vec![0.0f32; 2 * 40];
        for (t, v) in values[..40].iter_mut().enumerate() {
            *v = t as f32 / 100.0;
        }
        values[40] = 0.9; // bag 1: valid length 1, k = 1
        values[41] = 1.0; // padding past the valid length must not count
        let scores = Tensor::<2>::from_data(TensorData::new(values, [2, 40]), &device);
        let bags: Vec<f32> = bag_scores(scores, &[34, 1])
            .into_data()
            .try_to_vec()
            .unwrap();
        // Bag 0: valid 34 → k = 3 → mean(0.33, 0.32, 0.31).
        assert!((bags[0] - 0.32).abs() < 1e-6, "{bags:?}");
        assert!((bags[1] - 0.9).abs() < 1e-6, "{bags:?}");
    }

    #[test]
    fn bce_is_finite_at_saturated_scores_and_exact_elsewhere() {
        let device = Device::flex().autodiff();
        let p = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.8, 1.0], [3]), &device)
            .require_grad();
        let y = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 1.0, 0.0], [3]), &device);
        let loss = binary_cross_entropy(p.clone(), y);
        let value: f32 = loss.clone().into_scalar();
        let floor = f32::MIN_POSITIVE.ln();
        let expected = (-floor - 0.8f32.ln() - floor) / 3.0;
        assert!((value - expected).abs() < 1e-4, "{value} vs {expected}");
        let grads = loss.backward();
        let grad: Vec<f32> = p.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
        assert!((grad[1] + 1.0 / (3.0 * 0.8)).abs() < 1e-5, "{grad:?}");
    }

    #[test]
    fn triplet_needs_both_classes_and_is_never_below_the_margin_gap() {
        let device = Device::flex();
        let features = Tensor::<3>::random([2, 4, 3], burn::tensor::Distribution::Default, &device);
        let scores = Tensor::<2>::random([2, 4], burn::tensor::Distribution::Default, &device);
        assert!(triplet(features.clone(), scores.clone(), &[4, 4], &[true, true]).is_none());
        let loss: f32 = triplet(features, scores, &[4, 3], &[false, true])
            .unwrap()
            .into_scalar();
        // Unit vectors are at most 2 apart, so the hinge stays within [3, 7].
        assert!((3.0..=7.0).contains(&loss), "{loss}");
    }
}
