//! The signal side of the mixes: where a clip is active, how loud it is, and laying clips into a
//! recording with fades, so that an event's SNR is a measured fact of the written file.
//!
//! "Active" follows one rule everywhere: 20 ms frames on the clip's own grid whose RMS is within
//! [`ACTIVE_RANGE_DB`] of the loudest frame's. An event's level is the RMS over its active frames,
//! and its SNR compares that with the bed's RMS over the same samples of the mix.

/// The sample rate of every source and mix.
pub const RATE: u32 = 16_000;
/// 20 ms.
pub const FRAME: usize = 320;
/// Frames quieter than the loudest by more than this are inactive.
pub const ACTIVE_RANGE_DB: f64 = 30.0;

/// Which frames of a clip are active, and the samples from its first active frame to the end of
/// its last.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub frames: Vec<bool>,
    pub first: usize,
    pub end: usize,
}

/// The active frames of `samples`, or `None` for a clip with no sound at all.
pub fn activity(samples: &[f32]) -> Option<Activity> {
    let energies: Vec<f64> = samples
        .chunks(FRAME)
        .map(|f| f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / f.len() as f64)
        .collect();
    let loudest = energies.iter().copied().fold(0.0, f64::max);
    if loudest <= 0.0 {
        return None;
    }
    let floor = loudest * 10f64.powf(-ACTIVE_RANGE_DB / 10.0);
    let frames: Vec<bool> = energies.iter().map(|&e| e >= floor).collect();
    let first = frames.iter().position(|&a| a)?;
    let last = frames.iter().rposition(|&a| a)?;
    Some(Activity {
        first: first * FRAME,
        end: ((last + 1) * FRAME).min(samples.len()),
        frames,
    })
}

/// RMS of `signal[at..at + len]` over the frames marked active (frame `i` covers
/// `at + i·FRAME ..`, cut at `at + len`); samples past the signal's end count as silence.
pub fn rms_over(signal: &[f32], at: usize, len: usize, frames: &[bool]) -> f64 {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (i, _) in frames.iter().enumerate().filter(|(_, a)| **a) {
        let start = at + i * FRAME;
        let end = (at + ((i + 1) * FRAME).min(len)).min(at + len);
        for k in start..end {
            let s = signal.get(k).map_or(0.0, |&s| f64::from(s));
            sum += s * s;
        }
        count += end.saturating_sub(start);
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64).sqrt()
    }
}

/// A clip's RMS over its own active frames (0 for silence).
pub fn active_rms(samples: &[f32]) -> f64 {
    activity(samples).map_or(0.0, |a| rms_over(samples, 0, samples.len(), &a.frames))
}

/// Adds `gain · clip` into `out` from sample `at`, with linear fades of `fade_in` and `fade_out`
/// samples at the clip's ends (each at most half the clip); what falls past `out` is dropped.
pub fn lay(out: &mut [f32], clip: &[f32], at: usize, gain: f32, fade_in: usize, fade_out: usize) {
    let half = clip.len() / 2;
    let (fade_in, fade_out) = (fade_in.min(half), fade_out.min(half));
    let n = clip.len();
    for (k, &s) in clip.iter().enumerate() {
        let Some(o) = out.get_mut(at + k) else { break };
        let mut g = gain;
        if k < fade_in {
            g *= (k as f32 + 0.5) / fade_in as f32;
        }
        if n - k <= fade_out {
            g *= ((n - k) as f32 - 0.5) / fade_out as f32;
        }
        *o += g * s;
    }
}

/// An event or hard-negative clip cut to its active extent (and to `max_len` samples, faded out
/// over the last quarter second), with its activity on that cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub samples: Vec<f32>,
    pub activity: Activity,
    pub rms: f64,
}

/// Edge fade on a cut clip: short enough to keep a gunshot's onset, long enough not to click.
const EDGE_FADE: usize = 32;
const TRIM_FADE: usize = RATE as usize / 4;

/// Cuts `samples` to its active extent and to at most `max_len` samples; `None` when silent.
pub fn prepare(samples: &[f32], max_len: usize) -> Option<Prepared> {
    let first = activity(samples)?;
    let mut cut = samples[first.first..first.end].to_vec();
    let mut fade_out = EDGE_FADE;
    if cut.len() > max_len {
        cut.truncate(max_len);
        fade_out = TRIM_FADE;
    }
    let mut faded = vec![0.0; cut.len()];
    lay(&mut faded, &cut, 0, 1.0, EDGE_FADE, fade_out);
    let activity = activity(&faded)?;
    let rms = rms_over(&faded, 0, faded.len(), &activity.frames);
    Some(Prepared {
        samples: faded,
        activity,
        rms,
    })
}

/// The gain that puts `clip`, laid at `at`, `snr_db` above `bed` by active-frame RMS. The bed's
/// RMS is floored at 1e-6 so that a silent bed gives a finite (quiet) gain.
pub fn snr_gain(bed: &[f32], clip: &Prepared, at: usize, snr_db: f64) -> f32 {
    let bed_rms = rms_over(bed, at, clip.samples.len(), &clip.activity.frames).max(1e-6);
    (10f64.powf(snr_db / 20.0) * bed_rms / clip.rms.max(1e-12)) as f32
}

/// Scales `mix` so its peak is at most `peak`, then clips to [-1, 1]; returns the scale (1.0
/// when the peak was already within it).
pub fn limit_peak(mix: &mut [f32], peak: f32) -> f32 {
    let loudest = mix.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let scale = if loudest > peak { peak / loudest } else { 1.0 };
    for s in mix.iter_mut() {
        *s = (*s * scale).clamp(-1.0, 1.0);
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn noise(n: usize, rms: f64, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| (rng.normal() * rms) as f32).collect()
    }

    #[test]
    fn activity_skips_quiet_lead_in_and_tail() {
        let mut clip = vec![0.0f32; 10 * FRAME];
        for s in &mut clip[3 * FRAME..6 * FRAME] {
            *s = 0.5;
        }
        clip[0] = 1e-4; // 74 dB below: inactive
        let a = activity(&clip).expect("sound");
        assert_eq!((a.first, a.end), (3 * FRAME, 6 * FRAME));
        assert!(activity(&[0.0; 100]).is_none());
    }

    #[test]
    fn prepare_trims_long_clips_and_keeps_the_rule() {
        let long = noise(RATE as usize * 6, 0.1, 3);
        let p = prepare(&long, RATE as usize * 4).expect("sound");
        assert!(p.samples.len() <= RATE as usize * 4);
        assert!(p.activity.end <= p.samples.len());
        assert!((p.rms - 0.1).abs() < 0.01, "rms {}", p.rms);
    }

    #[test]
    fn peak_limit_scales_and_reports() {
        let mut mix = vec![0.1, -1.8, 0.45];
        let scale = limit_peak(&mut mix, 0.9);
        assert!((scale - 0.5).abs() < 1e-6);
        assert!((mix[1] + 0.9).abs() < 1e-6);
        let mut quiet = vec![0.1, -0.2];
        assert_eq!(limit_peak(&mut quiet, 0.9), 1.0);
    }
}
