//! Per-region overlap (PRO) and the area under its curve (AUPRO), following the MVTec AD
//! evaluation code: `pro_curve_util.py` `compute_pro` for the curve and `generic_util.py`
//! `trapezoid` for the area (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021).
//!
//! * Regions are the connected components of each ground-truth mask under 8-connectivity:
//!   MVTec labels them with `scipy.ndimage.label(mask, structure=np.ones((3, 3)))`, so pixels
//!   touching only at a corner are one region.
//! * Thresholds are every distinct anomaly score (MVTec sorts all scores of all images and
//!   takes cumulative sums, keeping the last point of each run of equal scores), so the curve is
//!   exact, not sampled at a fixed number of thresholds as some re-implementations do.
//! * At a threshold t, PRO is the mean over all regions of all images of the fraction of the
//!   region's pixels scoring `>= t`; FPR is the fraction of all normal (mask 0) pixels of all
//!   images scoring `>= t`. The curve gets (0, 0) in front and (1, 1) at the end.
//! * The area up to `max_fpr` is the trapezoid sum over the points with FPR `<= max_fpr`, plus
//!   the trapezoid up to `max_fpr` with PRO linearly interpolated there, divided by `max_fpr`.
//!
//! One deliberate difference: MVTec's code turns the cumulative false-positive counts into
//! `float32` before dividing, so its FPRs carry a relative error of up to 6e-8 and its AUPRO can
//! differ from the exact value by about 1e-7. FPRs here are exact `f64` ratios of counts, and
//! the PRO sums use compensated summation; `tests/fixtures/eval` holds both values.

use super::EvalError;

/// The integration limit MVTec AD reports AUPRO at (FPR up to 30 %).
pub const AUPRO_MAX_FPR: f64 = 0.3;

/// The 8-connected regions of a row-major `width × height` mask: a region number per pixel
/// (0 for normal pixels, regions numbered from 1 in the order their first pixel appears in
/// raster order, as `scipy.ndimage.label` numbers them) and each region's size in pixels.
fn label_regions(mask: &[bool], width: usize, height: usize) -> (Vec<usize>, Vec<usize>) {
    let mut labels = vec![0usize; mask.len()];
    let mut sizes = Vec::new();
    // An explicit stack, not recursion: a region can be a whole image of millions of pixels.
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        sizes.push(0usize);
        let region = sizes.len();
        labels[start] = region;
        stack.push(start);
        let mut size = 0;
        while let Some(pixel) = stack.pop() {
            size += 1;
            let (x, y) = (pixel % width, pixel / width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let neighbour = ny * width + nx;
                    if mask[neighbour] && labels[neighbour] == 0 {
                        labels[neighbour] = region;
                        stack.push(neighbour);
                    }
                }
            }
        }
        sizes[region - 1] = size;
    }
    (labels, sizes)
}

/// Neumaier's compensated sum: the PRO is a running sum of up to millions of `1 / size`
/// terms, whose plain float sum would drift by ~n·ε; this keeps it exact to a few ulps.
#[derive(Default)]
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Checks the arguments; returns the number of pixels per image.
fn check(
    maps: &[&[f32]],
    masks: &[&[bool]],
    width: usize,
    height: usize,
) -> Result<usize, EvalError> {
    if maps.len() != masks.len() {
        return Err(EvalError::MapCount {
            maps: maps.len(),
            masks: masks.len(),
        });
    }
    if maps.is_empty() {
        return Err(EvalError::Empty { metric: "aupro" });
    }
    let pixels = match width.checked_mul(height) {
        Some(p) if p > 0 => p,
        _ => return Err(EvalError::ImageSize { width, height }),
    };
    for (image, (map, mask)) in maps.iter().zip(masks).enumerate() {
        if map.len() != pixels || mask.len() != pixels {
            return Err(EvalError::MapSize {
                image,
                map_len: map.len(),
                mask_len: mask.len(),
                width,
                height,
                expected: pixels,
            });
        }
        if let Some(index) = map.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinitePixel {
                image,
                x: index % width,
                y: index / width,
                value: map[index],
            });
        }
    }
    Ok(pixels)
}

/// The PRO curve `(fprs, pros)` of anomaly maps against ground-truth masks, as MVTec AD's
/// `compute_pro` (see the module notes): FPR non-decreasing from 0 to 1, one point per
/// distinct score plus the (0, 0) and (1, 1) ends.
///
/// `maps[i]` and `masks[i]` are image `i`, row-major (`index = y · width + x`), `width ×
/// height` each; a mask pixel is `true` where the image is anomalous.
pub fn pro_curve(
    maps: &[&[f32]],
    masks: &[&[bool]],
    width: usize,
    height: usize,
) -> Result<(Vec<f64>, Vec<f64>), EvalError> {
    let pixels_per_image = check(maps, masks, width, height)?;
    let total = pixels_per_image * maps.len();
    // (score, PRO increment): the increment is 1/region size for an anomalous pixel and 0 for
    // a normal one (an anomalous pixel's is never 0, so 0 marks a false positive).
    let mut pixels: Vec<(f32, f64)> = Vec::with_capacity(total);
    let (mut normal, mut regions) = (0usize, 0usize);
    for (map, mask) in maps.iter().zip(masks) {
        let (labels, sizes) = label_regions(mask, width, height);
        regions += sizes.len();
        for (&score, &label) in map.iter().zip(&labels) {
            let increment = if label == 0 {
                normal += 1;
                0.0
            } else {
                1.0 / sizes[label - 1] as f64
            };
            pixels.push((score, increment));
        }
    }
    if regions == 0 {
        return Err(EvalError::NoRegions { images: maps.len() });
    }
    if normal == 0 {
        return Err(EvalError::NoNormalPixels { pixels: total });
    }
    // Unstable is enough: only the sums at the end of each run of equal scores are kept.
    pixels.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));

    let (normal, regions) = (normal as f64, regions as f64);
    let mut fprs = vec![0.0];
    let mut pros = vec![0.0];
    let mut false_positives = 0usize;
    let mut overlap = CompensatedSum::default();
    for (i, &(score, increment)) in pixels.iter().enumerate() {
        if increment == 0.0 {
            false_positives += 1;
        } else {
            overlap.add(increment);
        }
        // `!=` so that -0.0 and 0.0 are one threshold, as NumPy's `diff != 0` has it.
        if pixels.get(i + 1).is_none_or(|next| next.0 != score) {
            fprs.push(false_positives as f64 / normal);
            // MVTec clips at 1 against rounding in the sum; kept so that the curve never
            // leaves the unit square.
            pros.push((overlap.value() / regions).min(1.0));
        }
    }
    fprs.push(1.0);
    pros.push(1.0);
    Ok((fprs, pros))
}

/// The area under the PRO curve for FPR from 0 to `max_fpr`, divided by `max_fpr` (so 1 is
/// perfect), as MVTec AD reports it: `trapezoid(fprs, pros, x_max=max_fpr) / max_fpr`, with
/// PRO linearly interpolated at `max_fpr` when no curve point lies exactly there.
/// [`AUPRO_MAX_FPR`] (0.3) is the customary limit. Arguments as for [`pro_curve`].
pub fn aupro(
    maps: &[&[f32]],
    masks: &[&[bool]],
    width: usize,
    height: usize,
    max_fpr: f64,
) -> Result<f64, EvalError> {
    // Written so that NaN fails too.
    if !(max_fpr > 0.0 && max_fpr <= 1.0) {
        return Err(EvalError::MaxFpr { max_fpr });
    }
    let (fprs, pros) = pro_curve(maps, masks, width, height)?;
    Ok(area_up_to(&fprs, &pros, max_fpr) / max_fpr)
}

/// MVTec's `trapezoid(x, y, x_max)` for non-decreasing `x` that starts at 0 and ends at 1.
fn area_up_to(x: &[f64], y: &[f64], x_max: f64) -> f64 {
    let mut area = 0.0;
    for (xs, ys) in x.windows(2).zip(y.windows(2)) {
        let (x0, x1, y0, y1) = (xs[0], xs[1], ys[0], ys[1]);
        if x1 <= x_max {
            area += 0.5 * (y1 + y0) * (x1 - x0);
        } else {
            // The first point past x_max: MVTec's correction term, interpolating between the
            // last point at or below x_max and this one (none when a point lies on x_max).
            if x0 < x_max {
                let y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0);
                area += 0.5 * (y_at + y0) * (x_max - x0);
            }
            break;
        }
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> Vec<bool> {
        rows.iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect()
    }

    #[test]
    fn regions_are_8_connected() {
        // Two squares touching at one corner, and a pixel touching the second at a corner:
        // one region of 9 (4-connectivity would make three).
        let m = mask(&["##...", "##...", "..##.", "..##.", "....#"]);
        let (labels, sizes) = label_regions(&m, 5, 5);
        assert_eq!(sizes, [9]);
        assert!(labels.iter().zip(&m).all(|(&l, &a)| (l == 1) == a));

        let m = mask(&["#..#", "....", ".#.."]);
        let (labels, sizes) = label_regions(&m, 4, 3);
        assert_eq!(sizes, [1, 1, 1]);
        assert_eq!(labels, [1, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0]);
    }

    #[test]
    fn regions_do_not_wrap_around_rows() {
        // The end of row 0 and the start of row 1 are neighbours in memory, not in the image.
        let m = mask(&["..#", "#..", "..."]);
        let (_, sizes) = label_regions(&m, 3, 3);
        assert_eq!(sizes, [1, 1]);
    }

    #[test]
    fn curve_and_area_by_hand() {
        // 2 wide × 3 high, mask rows "#.", "..", "##": regions A = {(0,0)} and
        // B = {(0,2), (1,2)}, three normal pixels.
        let m = mask(&["#.", "..", "##"]);
        let map = [0.9f32, 0.8, 0.1, 0.2, 0.7, 0.3];
        let (fpr, pro) = pro_curve(&[&map], &[&m], 2, 3).unwrap();
        // Normal pixels: 0.8, 0.1, 0.2. Regions: A = {0.9}, B = {0.7, 0.3}.
        // t=0.9: PRO (1 + 0)/2 = .5, FPR 0
        // t=0.8: PRO .5, FPR 1/3
        // t=0.7: PRO (1 + .5)/2 = .75, FPR 1/3
        // t=0.3: PRO 1, FPR 1/3
        // t=0.2: FPR 2/3; t=0.1: FPR 1
        assert_eq!(
            fpr,
            [
                0.0,
                0.0,
                1.0 / 3.0,
                1.0 / 3.0,
                1.0 / 3.0,
                2.0 / 3.0,
                1.0,
                1.0
            ]
        );
        assert_eq!(pro, [0.0, 0.5, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]);
        // Up to FPR 1: 0 + (0.5 + 0.5)/2 · 1/3 + 0 + 0 + 1 · 2/3 = 1/6 + 2/3.
        let full = aupro(&[&map], &[&m], 2, 3, 1.0).unwrap();
        assert!((full - 5.0 / 6.0).abs() < 1e-12, "{full}");
        // Up to 0.3: PRO 0.5 all the way: 0.5 · 0.3 / 0.3.
        let part = aupro(&[&map], &[&m], 2, 3, 0.3).unwrap();
        assert!((part - 0.5).abs() < 1e-12, "{part}");
    }

    #[test]
    fn interpolates_at_the_limit() {
        // Curve (0,0), (0.5, 1), (1, 1): up to 0.25 the PRO rises linearly to 0.5.
        let area = area_up_to(&[0.0, 0.5, 1.0], &[0.0, 1.0, 1.0], 0.25);
        assert!((area - 0.0625).abs() < 1e-15);
        // A point exactly on the limit: no correction term.
        let area = area_up_to(&[0.0, 0.5, 1.0], &[0.0, 1.0, 1.0], 0.5);
        assert!((area - 0.25).abs() < 1e-15);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let map = [0.5f32; 4];
        let m = [true, false, false, false];
        assert!(matches!(
            aupro(&[&map], &[&m], 2, 2, 0.0),
            Err(EvalError::MaxFpr { .. })
        ));
        assert!(matches!(
            aupro(&[&map], &[&m], 2, 2, f64::NAN),
            Err(EvalError::MaxFpr { .. })
        ));
        assert!(matches!(
            aupro(&[&map], &[], 2, 2, 0.3),
            Err(EvalError::MapCount { maps: 1, masks: 0 })
        ));
        assert!(matches!(
            aupro(&[], &[], 2, 2, 0.3),
            Err(EvalError::Empty { metric: "aupro" })
        ));
        assert!(matches!(
            aupro(&[&map], &[&m], 0, 2, 0.3),
            Err(EvalError::ImageSize {
                width: 0,
                height: 2
            })
        ));
        assert!(matches!(
            aupro(&[&map], &[&m], 3, 2, 0.3),
            Err(EvalError::MapSize {
                image: 0,
                expected: 6,
                ..
            })
        ));
        let bad = [0.5, 0.5, 0.5, f32::NAN];
        assert!(matches!(
            aupro(&[&map, &bad], &[&m, &m], 2, 2, 0.3),
            Err(EvalError::NonFinitePixel {
                image: 1,
                x: 1,
                y: 1,
                ..
            })
        ));
        let none = [false; 4];
        assert!(matches!(
            aupro(&[&map], &[&none], 2, 2, 0.3),
            Err(EvalError::NoRegions { images: 1 })
        ));
        let all = [true; 4];
        assert!(matches!(
            aupro(&[&map], &[&all], 2, 2, 0.3),
            Err(EvalError::NoNormalPixels { pixels: 4 })
        ));
    }
}
