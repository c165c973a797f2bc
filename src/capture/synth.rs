//! Generated audio for the demo and the tests: a speech-like background with impulsive
//! events (gunshot-like bursts) at known times, so that a run needs no microphone and its
//! expected alerts are known in advance.

use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{AudioBlock, CaptureError, Sample, Source, Stamp};

/// An event planted in the generated stream.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthEvent {
    /// Start, seconds from the beginning of the stream.
    pub at_s: f32,
    pub kind: SynthEventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthEventKind {
    /// Two shots 0.35 s apart, each a saturated broadband blast with a low boom and a
    /// reverberant tail.
    Gunshot,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    #[serde(default = "default_rate")]
    pub rate: u32,
    pub duration_s: f32,
    #[serde(default)]
    pub events: Vec<SynthEvent>,
    /// Deliver blocks at the pace of a real microphone; off: as fast as the pipeline takes them.
    #[serde(default = "default_realtime")]
    pub realtime: bool,
    #[serde(default = "default_block_ms")]
    pub block_ms: u32,
    #[serde(default)]
    pub seed: u64,
}

fn default_rate() -> u32 {
    16_000
}

fn default_realtime() -> bool {
    true
}

fn default_block_ms() -> u32 {
    100
}

/// Small, fast, reproducible noise (PCG-XSH-RR); quality is ample for audio noise.
struct Noise(u64);

impl Noise {
    fn next_u32(&mut self) -> u32 {
        let old = self.0;
        self.0 = old
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Approximately standard normal (sum of uniforms; the tails do not matter here).
    fn gaussian(&mut self) -> f32 {
        let sum: f32 = (0..4)
            .map(|_| self.next_u32() as f32 / u32::MAX as f32)
            .sum();
        (sum - 2.0) * 1.732
    }
}

/// A two-pole resonator, enough to give a pulse train vowel-like formants.
struct Resonator {
    a1: f32,
    a2: f32,
    gain: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn new(freq: f32, bandwidth: f32, rate: f32) -> Self {
        let r = (-std::f32::consts::PI * bandwidth / rate).exp();
        let theta = 2.0 * std::f32::consts::PI * freq / rate;
        Self {
            a1: 2.0 * r * theta.cos(),
            a2: -r * r,
            gain: 1.0 - r,
            y1: 0.0,
            y2: 0.0,
        }
    }

    fn step(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Renders the whole clip: it is short, and rendering once keeps the stream deterministic.
pub fn render(config: &SynthConfig) -> Vec<f32> {
    let rate = config.rate as f32;
    let len = (config.duration_s.max(0.0) * rate) as usize;
    let mut noise = Noise(config.seed.wrapping_mul(2) + 0x9e37_79b9);
    let mut out = vec![0.0f32; len];

    // Background: a glottal-like pulse train at a wandering pitch through three formants,
    // amplitude-modulated at a syllable rate, over a little pink-ish noise.
    let mut formants = [(700.0, 130.0), (1220.0, 70.0), (2600.0, 160.0)]
        .map(|(f, bw)| Resonator::new(f, bw, rate));
    let mut phase = 0.0f32;
    let mut pink = 0.0f32;
    for (i, sample) in out.iter_mut().enumerate() {
        let t = i as f32 / rate;
        let pitch = 120.0 + 20.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
        phase += pitch / rate;
        let pulse = if phase >= 1.0 {
            phase -= 1.0;
            1.0
        } else {
            0.0
        };
        let excitation = 3.0 * pulse + 0.05 * noise.gaussian();
        let voiced: f32 = formants.iter_mut().map(|r| r.step(excitation)).sum();
        let syllables = (0.5 * (1.0 + (2.0 * std::f32::consts::PI * 4.0 * t).sin())).powi(2);
        pink = 0.95 * pink + 0.05 * noise.gaussian();
        *sample = 0.6 * voiced * syllables + 0.05 * pink;
    }

    for event in &config.events {
        let start = (event.at_s * rate) as usize;
        match event.kind {
            SynthEventKind::Gunshot => {
                for shot in 0..2 {
                    let at = (start + shot * (0.35 * rate) as usize).min(len);
                    add_gunshot(&mut out[at..], rate, &mut noise);
                }
            }
        }
    }
    for sample in &mut out {
        *sample = sample.clamp(-1.0, 1.0);
    }
    out
}

/// A gunshot as a microphone clips it: a sharp noise blast, a sinking low-frequency boom and
/// a reverberant tail, driven into saturation.
fn add_gunshot(out: &mut [f32], rate: f32, noise: &mut Noise) {
    let len = ((1.5 * rate) as usize).min(out.len());
    let mut tail = 0.0f32;
    let mut shot = Vec::with_capacity(len);
    for i in 0..len {
        let t = i as f32 / rate;
        let blast = noise.gaussian() * (-t / 0.06).exp();
        let boom = 1.5
            * (2.0 * std::f32::consts::PI * 90.0 * t * (-t / 0.5).exp()).sin()
            * (-t / 0.15).exp();
        tail = 0.8 * tail + noise.gaussian();
        shot.push(blast + boom + 0.2 * tail * (-t / 0.3).exp());
    }
    let peak = shot
        .iter()
        .fold(0.0f32, |m, s| m.max(s.abs()))
        .max(f32::EPSILON);
    // Hard saturation, as a close shot clips a microphone: YAMNet scores clipped blasts as
    // gunfire far more readily than clean ones (measured on the reference model).
    const DRIVE: f32 = 8.0;
    let driven_peak = DRIVE.tanh();
    for (o, s) in out.iter_mut().zip(shot) {
        *o += 0.95 * (DRIVE * s / peak).tanh() / driven_peak;
    }
}

/// A [`Source`] replaying the rendered clip block by block.
pub struct SynthSource {
    config: SynthConfig,
    clip: Vec<f32>,
    position: usize,
    next_seq: u64,
    started: Option<(Instant, SystemTime)>,
}

impl SynthSource {
    pub fn new(config: SynthConfig) -> Result<Self, CaptureError> {
        if config.rate == 0
            || config.block_ms == 0
            || config.duration_s.is_nan()
            || config.duration_s <= 0.0
        {
            return Err(CaptureError::Unsupported {
                what: "synthetic audio settings",
                detail: format!(
                    "rate {} Hz, block {} ms and duration {} s must all be positive",
                    config.rate, config.block_ms, config.duration_s
                ),
            });
        }
        let clip = render(&config);
        Ok(Self {
            config,
            clip,
            position: 0,
            next_seq: 0,
            started: None,
        })
    }
}

impl Source for SynthSource {
    fn start(&mut self) -> Result<(), CaptureError> {
        self.position = 0;
        self.started = Some((Instant::now(), SystemTime::now()));
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        let Some((start_instant, start_wall)) = self.started else {
            return Err(CaptureError::Unsupported {
                what: "reading a source",
                detail: "synthetic source read before start".into(),
            });
        };
        if self.position >= self.clip.len() {
            return Ok(None);
        }
        let block = (self.config.rate as usize * self.config.block_ms as usize / 1000).max(1);
        let end = (self.position + block).min(self.clip.len());
        let rate = self.config.rate;
        let pts = Duration::from_secs_f64(self.position as f64 / rate as f64);
        let block_end = Duration::from_secs_f64(end as f64 / rate as f64);
        if self.config.realtime {
            // A microphone delivers a block once its last sample has been recorded.
            if let Some(wait) = block_end.checked_sub(start_instant.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let stamp = Stamp {
            pts,
            captured_at: start_wall + pts,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let samples = self.clip[self.position..end].to_vec();
        self.position = end;
        Ok(Some(Sample::Audio(AudioBlock {
            stamp,
            rate,
            samples,
        })))
    }

    fn stop(&mut self) {
        self.started = None;
    }

    fn describe(&self) -> String {
        format!(
            "synthetic audio, {} s at {} Hz",
            self.config.duration_s, self.config.rate
        )
    }
}
