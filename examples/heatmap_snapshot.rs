//! A factory-line heatmap snapshot from a synthetic frame, to look at and to time.
//!
//!     cargo run --release --example heatmap_snapshot -- /tmp/snapshots
//!
//! Draws a 640×480 frame (a machined plate with four holes on a conveyor belt, a scratch and
//! a stain on the plate), a 64×64 anomaly map over the model's region (the central 400×400,
//! as a profile's `region` would set it) that is hot over the two defects, finds their boxes
//! with the runtime's `BoxFinder`, and writes `<dir>/cam0-1-42.heatmap.png`. Then prints how
//! long rendering and PNG encoding take, the work the decide thread does per snapshot.

use std::time::Instant;

use vigil::models::industrial::boxes::{BoxConfig, BoxFinder};
use vigil::models::industrial::overlay::{FrameRgb, HeatmapOverlay, MapView, ScoreRange};
use vigil::prepare::resize::Crop;

const WIDTH: usize = 640;
const HEIGHT: usize = 480;
const SIDE: usize = 64;
const PIXEL_THRESHOLD: f32 = 0.7;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    std::fs::create_dir_all(&dir)?;

    let rgb = frame();
    let region = Crop {
        x: 120,
        y: 40,
        width: 400,
        height: 400,
    };
    let map = anomaly_map(region);

    // Boxes as the decide stage finds them: in the region, then placed in the frame.
    let mut finder = BoxFinder::new(BoxConfig::default());
    let found = finder.find(&map, SIDE, PIXEL_THRESHOLD, region.width, region.height)?;
    let boxes: Vec<_> = found
        .boxes
        .iter()
        .map(|b| {
            let mut placed = *b;
            placed.x += region.x as u32;
            placed.y += region.y as u32;
            placed
        })
        .collect();
    for b in &boxes {
        println!(
            "box {}×{} at ({}, {}), peak {:.2}",
            b.width, b.height, b.x, b.y, b.peak_score
        );
    }

    let frame = FrameRgb {
        rgb: &rgb,
        width: WIDTH,
        height: HEIGHT,
    };
    let view = MapView {
        scores: &map,
        side: SIDE,
        region,
    };
    let range = ScoreRange::up_to_twice(PIXEL_THRESHOLD)?;
    let mut overlay = HeatmapOverlay::new();
    let path = overlay.write_png(frame, view, range, &boxes, &dir, "cam0-1-42")?;
    println!("wrote {}", path.display());

    // Timing: rendering alone, and render + encode + write + rename (what the decide thread
    // waits for), each the median of 30 runs after the first.
    let mut render = Vec::new();
    let mut total = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        overlay.render(frame, view, range, &boxes)?;
        render.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        overlay.write_png(frame, view, range, &boxes, &dir, "cam0-1-42")?;
        total.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let size = std::fs::metadata(&path)?.len();
    println!(
        "640×480 snapshot ({} KiB): render {:.2} ms, render + PNG encode + write {:.2} ms (medians of 30)",
        size / 1024,
        median(&mut render),
        median(&mut total)
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A deterministic pseudo-random number in [0, 1) per pixel (a hash, so no RNG state).
fn noise(x: usize, y: usize) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h & 0xFFFF) as f32 / 65536.0
}

/// The frame: a dark belt with ribs, a brushed metal plate with four holes, a scratch and a
/// rust-coloured stain on it.
fn frame() -> Vec<u8> {
    let mut rgb = Vec::with_capacity(WIDTH * HEIGHT * 3);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let (fx, fy) = (x as f32, y as f32);
            let grain = noise(x, y) - 0.5;
            // Belt: dark blue-grey, a rib every 24 rows.
            let rib = if y % 24 < 3 { 14.0 } else { 0.0 };
            let mut colour = [
                46.0 + rib + 10.0 * grain,
                50.0 + rib + 10.0 * grain,
                58.0 + rib,
            ];
            let on_plate = (170..470).contains(&x) && (90..390).contains(&y);
            if on_plate {
                // Brushed metal: light grey, lit from the top left, streaks along x.
                let light = 180.0 - 0.08 * (fx - 170.0) - 0.06 * (fy - 90.0);
                let streak = 12.0 * (noise(0, y) - 0.5) + 6.0 * grain;
                let v = light + streak;
                colour = [v, v + 2.0, v + 6.0];
                for (cx, cy) in [
                    (210.0, 130.0),
                    (430.0, 130.0),
                    (210.0, 350.0),
                    (430.0, 350.0),
                ] {
                    let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
                    if d < 12.0 {
                        colour = [25.0, 25.0, 28.0];
                    } else if d < 15.0 {
                        colour = [120.0, 122.0, 128.0];
                    }
                }
                // A scratch: a thin dark diagonal line.
                let along = fx - 250.0;
                if (0.0..110.0).contains(&along) && ((fy - 200.0) - 0.45 * along).abs() < 1.6 {
                    colour = [70.0, 68.0, 66.0];
                }
                // A stain: a rust-brown blot.
                let blot = ((fx - 380.0) / 26.0).powi(2) + ((fy - 310.0) / 18.0).powi(2);
                if blot < 1.0 + 0.3 * grain {
                    colour = [150.0, 90.0 + 10.0 * grain, 55.0];
                }
            }
            rgb.extend(colour.map(|c| c.clamp(0.0, 255.0) as u8));
        }
    }
    rgb
}

/// The map over `region`: low noise everywhere, hot along the scratch and over the stain.
fn anomaly_map(region: Crop) -> Vec<f32> {
    let mut map = Vec::with_capacity(SIDE * SIDE);
    for my in 0..SIDE {
        for mx in 0..SIDE {
            // The map pixel's centre in frame pixels.
            let fx = region.x as f32 + (mx as f32 + 0.5) * region.width as f32 / SIDE as f32;
            let fy = region.y as f32 + (my as f32 + 0.5) * region.height as f32 / SIDE as f32;
            let mut score = 0.15 + 0.2 * noise(mx + 1000, my);
            // Distance to the scratch segment, for a ridge of heat along it.
            let t = ((fx - 250.0) / 110.0).clamp(0.0, 1.0);
            let (sx, sy) = (250.0 + 110.0 * t, 200.0 + 0.45 * 110.0 * t);
            let d2 = (fx - sx).powi(2) + (fy - sy).powi(2);
            score += 1.1 * (-d2 / (2.0 * 12.0f32.powi(2))).exp();
            let d2 = (fx - 380.0).powi(2) + (fy - 310.0).powi(2);
            score += 0.9 * (-d2 / (2.0 * 16.0f32.powi(2))).exp();
            map.push(score);
        }
    }
    map
}
