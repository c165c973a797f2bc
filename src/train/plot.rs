//! PNG plots of a run: loss curves per epoch, and ROC / PR curves of an evaluation.
//!
//! Text needs a TrueType font. plotters' system-font lookup drags in fontconfig, so vigil reads
//! DejaVu Sans (Debian `fonts-dejavu-core`, installed by `scripts/deps.sh`) or the file named by
//! `VIGIL_PLOT_FONT`; without one, plotting fails with an error saying so, and the trainer logs
//! it and keeps its CSV: a missing font never stops a training run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

/// Why a plot was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(
        "no font for plot text: install fonts-dejavu-core or set VIGIL_PLOT_FONT to a .ttf ({0})"
    )]
    NoFont(String),
    #[error("cannot draw {path}: {reason}")]
    Draw { path: PathBuf, reason: String },
    #[error("nothing to plot in {0}")]
    Empty(PathBuf),
}

const FONT_NAME: &str = "sans-serif";
const DEFAULT_FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the font once per process; the bytes live as long as the process (plotters needs
/// `'static`), which is one small file.
fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("VIGIL_PLOT_FONT")
            .map(|p| vec![PathBuf::from(p)])
            .unwrap_or_else(|| DEFAULT_FONTS.iter().map(PathBuf::from).collect());
        let (path, bytes) = candidates
            .iter()
            .find_map(|path| std::fs::read(path).ok().map(|bytes| (path, bytes)))
            .ok_or_else(|| format!("tried {candidates:?}"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FONT_NAME, FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(PlotError::NoFont)
}

/// One named curve.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws line series on one chart and writes it as PNG.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    unit_square: bool,
) -> Result<(), PlotError> {
    ensure_font()?;
    let finite = |v: &f64| v.is_finite();
    let points = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| finite(x) && finite(y));
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for &(x, y) in points {
        any = true;
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !any {
        return Err(PlotError::Empty(path.to_path_buf()));
    }
    if unit_square {
        (x_min, x_max, y_min, y_max) = (0.0, 1.0, 0.0, 1.0);
    } else {
        let pad = |lo: f64, hi: f64| {
            let span = (hi - lo).abs().max(1e-9);
            (lo - 0.05 * span, hi + 0.05 * span)
        };
        (x_min, x_max) = pad(x_min, x_max);
        (y_min, y_max) = pad(y_min, y_max);
    }
    let draw_error = |reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    let root = BitMapBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_NAME, 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_min..x_max, y_min..y_max)
        .map_err(|e| draw_error(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT_NAME, 14))
        .draw()
        .map_err(|e| draw_error(e.to_string()))?;
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (index, line) in series.iter().enumerate() {
        let colour = colours[index % colours.len()];
        chart
            .draw_series(LineSeries::new(
                line.points
                    .iter()
                    .copied()
                    .filter(|(x, y)| finite(x) && finite(y)),
                colour.stroke_width(2),
            ))
            .map_err(|e| draw_error(e.to_string()))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .label_font((FONT_NAME, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_error(e.to_string()))?;
    root.present().map_err(|e| draw_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_or_says_which_font_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("loss.png");
        let series = [Series {
            label: "train".into(),
            points: vec![(1.0, 0.7), (2.0, 0.4), (3.0, 0.3)],
        }];
        match line_chart(&path, "loss", "epoch", "loss", &series, false) {
            Ok(()) => {
                let bytes = std::fs::read(&path).expect("png written");
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            }
            Err(PlotError::NoFont(detail)) => assert!(detail.contains("tried")),
            Err(other) => panic!("{other}"),
        }
        let empty = line_chart(&path, "t", "x", "y", &[], false);
        assert!(matches!(
            empty,
            Err(PlotError::Empty(_)) | Err(PlotError::NoFont(_))
        ));
    }
}
