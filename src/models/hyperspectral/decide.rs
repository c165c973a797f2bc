//! Scores to alerts: pixels above the threshold, grouped into 8-connected components across
//! consecutive lines. A component raises a `new` alert on the line where it reaches
//! `min_pixels` (so a target is reported while the sensor is still passing over it) and an `end`
//! alert with its whole bounding box once a line passes without extending it.

use std::path::PathBuf;
use std::time::Duration;

use super::HyperspectralSettings;
use super::detect::LineScores;
use crate::alert::{Alert, Name, Region};
use crate::capture::Stamp;
use crate::decide::{AlertFactory, Transition, name};
use crate::hsi::threshold::{ThresholdRule, chi2_upper_quantile};
use crate::pipeline::Decide;

/// Scores seen so far as a log-spaced histogram, for the empirical-quantile threshold on an
/// unbounded stream in constant memory: 64 bins per decade bound the quantile's error to 3.7 %.
#[derive(Debug, Clone)]
struct ScoreHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl ScoreHistogram {
    const BINS_PER_DECADE: f64 = 64.0;
    /// Scores from 1e-6 to 1e9.
    const LOWEST_LOG10: f64 = -6.0;
    const DECADES: f64 = 15.0;

    fn new() -> ScoreHistogram {
        ScoreHistogram {
            counts: vec![0; (Self::BINS_PER_DECADE * Self::DECADES) as usize + 1],
            total: 0,
        }
    }

    fn bin(score: f32) -> usize {
        let log = f64::from(score.max(1e-30)).log10();
        let bin = ((log - Self::LOWEST_LOG10) * Self::BINS_PER_DECADE).floor();
        bin.clamp(0.0, Self::BINS_PER_DECADE * Self::DECADES) as usize
    }

    fn add(&mut self, scores: &[f32]) {
        for &s in scores {
            self.counts[Self::bin(s)] += 1;
        }
        self.total += scores.len() as u64;
    }

    /// The upper edge of the bin where the `1 − p_fa` quantile falls.
    fn upper_quantile(&self, p_fa: f64) -> f64 {
        // With no scores yet, nothing can be called anomalous.
        if self.total == 0 {
            return f64::INFINITY;
        }
        let wanted = (((1.0 - p_fa) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return 10f64.powf(Self::LOWEST_LOG10 + (bin as f64 + 1.0) / Self::BINS_PER_DECADE);
            }
        }
        f64::INFINITY
    }
}

/// Components of the previous line and runs of this one that are connected.
type Group = (Vec<Component>, Vec<(usize, usize)>);

#[derive(Debug, Clone)]
struct Component {
    event: u64,
    announced: bool,
    /// The threshold the component was announced on; its end alert repeats it.
    threshold: f64,
    start: Duration,
    first_row: u64,
    last_row: u64,
    min_col: usize,
    max_col: usize,
    pixels: usize,
    peak: f32,
    peak_map: Option<[f64; 2]>,
    /// Column runs `[start, end]` in `last_row`, for connectivity with the next line.
    runs: Vec<(usize, usize)>,
}

impl Component {
    fn from_run(
        row: u64,
        (start, end): (usize, usize),
        scores: &[f32],
        line: &LineScores,
        pts: Duration,
    ) -> Component {
        let (peak_col, peak) = (start..=end).fold((start, f32::NEG_INFINITY), |best, c| {
            if scores[c] > best.1 {
                (c, scores[c])
            } else {
                best
            }
        });
        let peak_map = line.line.map_info.as_ref().map(|m| {
            let (x, y) = m.pixel_to_map(row as usize, peak_col);
            [x, y]
        });
        Component {
            event: 0,
            announced: false,
            threshold: f64::NAN,
            start: pts,
            first_row: row,
            last_row: row,
            min_col: start,
            max_col: end,
            pixels: end - start + 1,
            peak,
            peak_map,
            runs: vec![(start, end)],
        }
    }

    fn region(&self) -> Region {
        Region {
            x: self.min_col as u32,
            y: self.first_row.min(u64::from(u32::MAX)) as u32,
            width: (self.max_col - self.min_col + 1) as u32,
            height: (self.last_row - self.first_row + 1).min(u64::from(u32::MAX)) as u32,
            score: self.peak,
            map_xy: self.peak_map,
        }
    }

    fn absorb(&mut self, other: Component) {
        self.first_row = self.first_row.min(other.first_row);
        self.min_col = self.min_col.min(other.min_col);
        self.max_col = self.max_col.max(other.max_col);
        self.pixels += other.pixels;
        self.start = self.start.min(other.start);
        if other.peak > self.peak {
            self.peak = other.peak;
            self.peak_map = other.peak_map;
        }
        // The other's event is over (it was closed by the caller if announced).
    }
}

/// A strip of the anomaly map being filled.
struct MapStrip {
    dir: PathBuf,
    lines: usize,
    first_row: u64,
    width: usize,
    scores: Vec<f32>,
    threshold: f64,
}

pub struct AnomalyDecide {
    factory: AlertFactory,
    label: Name,
    rule: ThresholdRule,
    rule_name: Name,
    min_pixels: usize,
    histogram: ScoreHistogram,
    /// The χ² threshold for the last rank seen.
    chi2: Option<(usize, f64)>,
    open: Vec<Component>,
    strip: Option<MapStrip>,
    last_stamp: Option<Stamp>,
}

impl AnomalyDecide {
    pub fn new(
        stream: &str,
        model: &str,
        settings: &HyperspectralSettings,
        map_dir: Option<PathBuf>,
    ) -> Result<AnomalyDecide, String> {
        settings.threshold.validate().map_err(|e| e.to_string())?;
        if settings.map_lines == 0 {
            return Err("hyperspectral.map_lines must be at least 1".into());
        }
        if let Some(dir) = &map_dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("map_dir {}: {e}", dir.display()))?;
        }
        Ok(AnomalyDecide {
            factory: AlertFactory::new(stream, model).map_err(|e| e.to_string())?,
            label: name("label", &settings.label).map_err(|e| e.to_string())?,
            rule: settings.threshold,
            rule_name: name("threshold rule", settings.threshold.name())
                .map_err(|e| e.to_string())?,
            min_pixels: settings.min_pixels.max(1),
            histogram: ScoreHistogram::new(),
            chi2: None,
            open: Vec::new(),
            strip: map_dir.map(|dir| MapStrip {
                dir,
                lines: settings.map_lines,
                first_row: 0,
                width: 0,
                scores: Vec::new(),
                threshold: f64::INFINITY,
            }),
            last_stamp: None,
        })
    }

    fn threshold(&mut self, line: &LineScores) -> f64 {
        match self.rule {
            ThresholdRule::CfarChi2 { p_fa } => {
                // The rank only changes while the covariance fills up; solve once per rank.
                let rank = line.scored.rank.max(1);
                match self.chi2 {
                    Some((cached_rank, threshold)) if cached_rank == rank => threshold,
                    _ => {
                        let threshold = chi2_upper_quantile(p_fa, rank as f64);
                        self.chi2 = Some((rank, threshold));
                        threshold
                    }
                }
            }
            // The batch's scores are already in the histogram (see `decide`).
            ThresholdRule::EmpiricalQuantile { p_fa } => self.histogram.upper_quantile(p_fa),
        }
    }

    fn alert(
        &mut self,
        component: &mut Component,
        transition: Transition,
        stamp: &Stamp,
        threshold: f64,
        emit: &mut dyn FnMut(Alert),
    ) {
        let region = component.region();
        let mut alert = self.factory.make(
            &self.label,
            &mut component.event,
            threshold as f32,
            transition,
            stamp,
            &[region],
        );
        alert.threshold_rule = Some(self.rule_name.clone());
        emit(alert);
    }

    fn close(&mut self, mut component: Component, stamp: &Stamp, emit: &mut dyn FnMut(Alert)) {
        if component.announced {
            let transition = Transition::Ended {
                start: component.start,
                end: stamp.pts,
                peak: component.peak,
            };
            let threshold = component.threshold;
            self.alert(&mut component, transition, stamp, threshold, emit);
        }
    }

    /// Extends, merges, opens and closes components with this line's anomalous runs.
    fn track(&mut self, line: &LineScores, threshold: f64, emit: &mut dyn FnMut(Alert)) {
        let row = line.line.index;
        let stamp = line.line.stamp;
        let scores = &line.scored.scores;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (col, &score) in scores.iter().enumerate() {
            if f64::from(score) > threshold {
                match runs.last_mut() {
                    Some(run) if run.1 + 1 == col => run.1 = col,
                    _ => runs.push((col, col)),
                }
            }
        }
        let (previous, finished): (Vec<Component>, Vec<Component>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|c| c.last_row + 1 == row);
        for component in finished {
            self.close(component, &stamp, emit);
        }
        // Union–find over previous components (0..p) and this line's runs (p..p+r). Runs of one
        // line are maximal, so they only ever join through a component of the line before.
        let p = previous.len();
        let mut parent: Vec<usize> = (0..p + runs.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (r, &(start, end)) in runs.iter().enumerate() {
            for (c, component) in previous.iter().enumerate() {
                // 8-connectivity: runs touch when they overlap once widened by one pixel.
                if component
                    .runs
                    .iter()
                    .any(|&(s, e)| s <= end + 1 && start <= e + 1)
                {
                    let (a, b) = (root(&mut parent, p + r), root(&mut parent, c));
                    parent[a] = b;
                }
            }
        }
        let mut groups: std::collections::BTreeMap<usize, Group> =
            std::collections::BTreeMap::new();
        for (c, component) in previous.into_iter().enumerate() {
            groups
                .entry(root(&mut parent, c))
                .or_default()
                .0
                .push(component);
        }
        for (r, run) in runs.iter().enumerate() {
            groups
                .entry(root(&mut parent, p + r))
                .or_default()
                .1
                .push(*run);
        }
        for (mut components, group_runs) in groups.into_values() {
            if group_runs.is_empty() {
                for component in components {
                    self.close(component, &stamp, emit);
                }
                continue;
            }
            // The first announced component keeps its event; others that were announced end.
            components.sort_by_key(|c| !c.announced);
            let mut merged: Option<Component> = None;
            for component in components {
                match &mut merged {
                    None => merged = Some(component),
                    Some(base) => {
                        if component.announced {
                            self.close(component.clone(), &stamp, emit);
                        }
                        base.absorb(component);
                    }
                }
            }
            for &(start, end) in &group_runs {
                let fresh = Component::from_run(row, (start, end), scores, line, stamp.pts);
                match &mut merged {
                    None => merged = Some(fresh),
                    Some(base) => base.absorb(fresh),
                }
            }
            let Some(mut component) = merged else {
                continue;
            };
            component.last_row = row;
            component.runs = group_runs;
            if !component.announced && component.pixels >= self.min_pixels {
                component.announced = true;
                component.threshold = threshold;
                let transition = Transition::Opened {
                    start: component.start,
                    score: component.peak,
                };
                self.alert(&mut component, transition, &stamp, threshold, emit);
            }
            self.open.push(component);
        }
    }

    fn record_map(&mut self, line: &LineScores, threshold: f64) {
        let Some(strip) = &mut self.strip else { return };
        if strip.scores.is_empty() {
            strip.first_row = line.line.index;
            strip.width = line.line.width;
        }
        strip.scores.extend_from_slice(&line.scored.scores);
        strip.threshold = threshold;
        if strip.scores.len() / strip.width.max(1) >= strip.lines {
            self.flush_map();
        }
    }

    fn flush_map(&mut self) {
        let Some(strip) = &mut self.strip else { return };
        if strip.scores.is_empty() || strip.width == 0 {
            return;
        }
        let rows = strip.scores.len() / strip.width;
        let path = strip.dir.join(format!(
            "anomaly-map-{:08}-{:08}.png",
            strip.first_row,
            strip.first_row + rows as u64 - 1
        ));
        match super::map::write_png(&path, rows, strip.width, &strip.scores, strip.threshold) {
            Ok(()) => log::info!("anomaly map written: {}", path.display()),
            // The map is a convenience; alerts must not stop because a disk filled up.
            Err(err) => log::warn!("anomaly map not written: {err}"),
        }
        strip.scores.clear();
    }
}

impl Decide for AnomalyDecide {
    type Input = Vec<LineScores>;

    fn decide(&mut self, stamp: Stamp, lines: Vec<LineScores>, emit: &mut dyn FnMut(Alert)) {
        // Lines handed over together (a FERS-edge block, streaming RX's warm-up) share one
        // empirical threshold over every score so far, theirs included: the first lines of a
        // flight are not judged against a quantile of a few hundred scores.
        if let ThresholdRule::EmpiricalQuantile { .. } = self.rule {
            for line in &lines {
                self.histogram.add(&line.scored.scores);
            }
        }
        for line in lines {
            let threshold = self.threshold(&line);
            self.record_map(&line, threshold);
            self.track(&line, threshold, emit);
        }
        self.last_stamp = Some(stamp);
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Alert)) {
        if let Some(stamp) = self.last_stamp {
            for component in std::mem::take(&mut self.open) {
                self.close(component, &stamp, emit);
            }
        }
        self.flush_map();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Phase;
    use crate::capture::pushbroom::SpectralLine;
    use crate::hsi::streaming::ScoredLine;
    use std::time::SystemTime;

    /// Lines of `width` pixels scoring 100 where `rows[i]` marks them, 1 elsewhere.
    fn lines(rows: &[&str]) -> Vec<LineScores> {
        rows.iter()
            .enumerate()
            .map(|(index, marks)| {
                let scores: Vec<f32> = marks
                    .chars()
                    .map(|c| if c == '#' { 100.0 } else { 1.0 })
                    .collect();
                LineScores {
                    line: SpectralLine {
                        stamp: Stamp {
                            pts: Duration::from_millis(index as u64),
                            captured_at: SystemTime::UNIX_EPOCH,
                            seq: index as u64,
                        },
                        index: index as u64,
                        width: scores.len(),
                        bands: 1,
                        values: Vec::new(),
                        map_info: None,
                    },
                    scored: ScoredLine {
                        index: index as u64,
                        scores,
                        rank: 1,
                    },
                }
            })
            .collect()
    }

    fn run(rows: &[&str], min_pixels: usize) -> Vec<Alert> {
        let settings = HyperspectralSettings {
            // χ²₁ at 1e-6 is 23.9: 100 is above, 1 below.
            threshold: ThresholdRule::CfarChi2 { p_fa: 1e-6 },
            min_pixels,
            ..Default::default()
        };
        let mut decide = AnomalyDecide::new("hsi0", "rx", &settings, None).unwrap();
        let mut alerts = Vec::new();
        let all = lines(rows);
        let stamp = all[0].line.stamp;
        decide.decide(stamp, all, &mut |a| alerts.push(a));
        decide.finish(&mut |a| alerts.push(a));
        alerts
    }

    fn boxes(alerts: &[Alert], phase: Phase) -> Vec<(u32, u32, u32, u32)> {
        alerts
            .iter()
            .filter(|a| a.phase == phase)
            .map(|a| {
                (
                    a.regions[0].y,
                    a.regions[0].x,
                    a.regions[0].height,
                    a.regions[0].width,
                )
            })
            .collect()
    }

    #[test]
    fn diagonal_pixels_are_one_target_and_separate_ones_two() {
        let alerts = run(&["#....#", ".#...#", "..#...", "......"], 1);
        // (row, col, height, width): the diagonal is 8-connected; the right column is another.
        assert_eq!(boxes(&alerts, Phase::New), [(0, 0, 1, 1), (0, 5, 1, 1)]);
        let mut ended = boxes(&alerts, Phase::End);
        ended.sort();
        assert_eq!(ended, [(0, 0, 3, 3), (0, 5, 2, 1)]);
        assert!(
            alerts.iter().all(
                |a| a.threshold_rule.as_deref() == Some("cfar-chi2") && a.threshold.is_finite()
            )
        );
    }

    #[test]
    fn a_u_shape_merges_into_the_first_event_and_small_groups_stay_quiet() {
        let alerts = run(&["#...#", "#...#", "#####", "....."], 1);
        assert_eq!(
            boxes(&alerts, Phase::New).len(),
            2,
            "two arms open two events"
        );
        // The arms join on line 2: one event ends as merged, the survivor covers the whole U.
        let ended = boxes(&alerts, Phase::End);
        assert_eq!(ended.len(), 2);
        assert!(ended.contains(&(0, 0, 3, 5)), "{ended:?}");
        let quiet = run(&["#....", ".....", "..##.", "..##."], 3);
        assert_eq!(
            boxes(&quiet, Phase::New),
            [(2, 2, 2, 2)],
            "the lone pixel is below min_pixels"
        );
    }

    #[test]
    fn the_empirical_threshold_follows_the_scores() {
        let mut histogram = ScoreHistogram::new();
        let scores: Vec<f32> = (1..=10_000).map(|v| v as f32).collect();
        histogram.add(&scores);
        let threshold = histogram.upper_quantile(1e-2);
        assert!(
            (9_900.0..9_900.0 * 1.037).contains(&threshold),
            "{threshold}"
        );
        assert_eq!(ScoreHistogram::new().upper_quantile(0.1), f64::INFINITY);
    }
}
