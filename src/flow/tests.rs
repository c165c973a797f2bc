use super::*;

/// Value noise: a hash of the integer lattice, interpolated smoothly.
fn lattice(i: i64, j: i64) -> f32 {
    let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

fn value_noise(x: f32, y: f32, scale: f32) -> f32 {
    let (x, y) = (x / scale, y / scale);
    let (i, j) = (x.floor(), y.floor());
    let (fx, fy) = (x - i, y - j);
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (smooth(fx), smooth(fy));
    let (i, j) = (i as i64, j as i64);
    let top = lattice(i, j) * (1.0 - sx) + lattice(i + 1, j) * sx;
    let bottom = lattice(i, j + 1) * (1.0 - sx) + lattice(i + 1, j + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// A non-periodic texture with detail at several scales, evaluated at real positions so that
/// a shifted copy is exact.
fn texture(x: f32, y: f32) -> f32 {
    0.5 * value_noise(x, y, 23.0)
        + 0.3 * value_noise(x + 101.0, y, 9.0)
        + 0.2 * value_noise(x, y + 57.0, 4.0)
}

fn frame(width: usize, height: usize, shift: (f32, f32), gain: f32) -> GrayImage {
    let mut data = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            data.push(gain * texture(x as f32 - shift.0, y as f32 - shift.1));
        }
    }
    GrayImage::from_values(width, height, data)
}

/// Mean endpoint error away from a margin (motion uncovers unknown content at the borders).
fn interior_error(flow: &FlowField, truth: (f32, f32), margin: usize) -> f32 {
    let mut total = 0.0;
    let mut count = 0;
    for y in margin..flow.height - margin {
        for x in margin..flow.width - margin {
            let i = y * flow.width + x;
            total += ((flow.u[i] - truth.0).powi(2) + (flow.v[i] - truth.1).powi(2)).sqrt();
            count += 1;
        }
    }
    total / count as f32
}

#[test]
fn a_translation_is_found_at_every_preset() {
    let motion = (3.4, -2.2);
    let first = frame(160, 120, (0.0, 0.0), 1.0);
    let second = frame(160, 120, motion, 1.0);
    // The presets that stop at quarter resolution lose sub-pixel detail to the upsampling.
    for (params, bound) in [
        (DisParams::ULTRAFAST, 0.3),
        (DisParams::FAST, 0.3),
        (DisParams::MEDIUM, 0.1),
    ] {
        let flow = dense_flow(&first, &second, &params).unwrap();
        assert_eq!((flow.width, flow.height), (160, 120));
        let error = interior_error(&flow, motion, 12);
        assert!(error < bound, "{params:?}: endpoint error {error}");
    }
}

#[test]
fn large_motion_is_followed_through_the_pyramid() {
    // 14 pixels is beyond one patch at full size; the coarse levels must carry it.
    let motion = (14.0, 5.5);
    let first = frame(256, 192, (0.0, 0.0), 1.0);
    let second = frame(256, 192, motion, 1.0);
    let flow = dense_flow(&first, &second, &DisParams::FAST).unwrap();
    let error = interior_error(&flow, motion, 24);
    assert!(error < 0.3, "endpoint error {error}");
}

#[test]
fn still_frames_give_no_motion_and_a_brightness_change_does_not_move_them() {
    let first = frame(96, 96, (0.0, 0.0), 1.0);
    let flow = dense_flow(&first, &first, &DisParams::FAST).unwrap();
    assert!(interior_error(&flow, (0.0, 0.0), 0) < 1e-3);
    // Each patch's mean is removed before comparing, so an offset is not motion at all, and
    // a gain (which also scales contrast) only a little.
    let offset = GrayImage::from_values(96, 96, first.data.iter().map(|v| v + 0.1).collect());
    let flow = dense_flow(&first, &offset, &DisParams::FAST).unwrap();
    assert!(interior_error(&flow, (0.0, 0.0), 0) < 1e-3);
    let brighter = frame(96, 96, (0.0, 0.0), 1.1);
    let flow = dense_flow(&first, &brighter, &DisParams::FAST).unwrap();
    let error = interior_error(&flow, (0.0, 0.0), 8);
    assert!(error < 0.2, "a 10 % gain reads as {error} px of motion");
}

#[test]
fn bad_frames_and_settings_are_errors() {
    let a = frame(64, 48, (0.0, 0.0), 1.0);
    let b = frame(48, 64, (0.0, 0.0), 1.0);
    let err = dense_flow(&a, &b, &DisParams::FAST).unwrap_err();
    assert!(err.to_string().contains("(64, 48) then (48, 64)"), "{err}");
    let tiny = frame(6, 6, (0.0, 0.0), 1.0);
    let err = dense_flow(&tiny, &tiny, &DisParams::FAST).unwrap_err();
    assert!(matches!(err, FlowError::TooSmall { patch: 8, .. }), "{err}");
    let bad = DisParams {
        stride: 0,
        ..DisParams::FAST
    };
    assert!(matches!(
        dense_flow(&a, &a, &bad),
        Err(FlowError::Params(_))
    ));
    let err = GrayImage::from_gray8(10, 10, &[0; 99]).unwrap_err();
    assert!(err.to_string().contains("needs 100 bytes, got 99"), "{err}");
    assert!(GrayImage::from_rgb8(0, 10, &[]).is_err());
}

#[test]
fn pyramid_halves_and_gradients_read_a_ramp() {
    let ramp = GrayImage::from_values(9, 5, (0..45).map(|i| (i % 9) as f32).collect());
    let pyramid = ramp.pyramid(3);
    let sizes: Vec<(usize, usize)> = pyramid.iter().map(|p| (p.width, p.height)).collect();
    assert_eq!(sizes, vec![(9, 5), (5, 3), (3, 2)]);
    let (gx, gy) = ramp.gradients();
    assert!((gx.at(4, 2) - 1.0).abs() < 1e-6);
    assert!(gy.at(4, 2).abs() < 1e-6);
    assert!((ramp.sample(2.25, 1.0) - 2.25).abs() < 1e-6);
}
