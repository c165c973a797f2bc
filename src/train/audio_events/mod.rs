//! The audio-event development set: real event recordings (gunshots, screams, …) from Debian
//! packages mixed at controlled SNR into beds of real speech, music, street and crowd sound, one
//! folder per part, with the event list each recording's scorer reads.
//!
//! [`devset`] reads the file list (`models/audio-events/devset.tsv`, fetched and converted by
//! `scripts/fetch-audio-events.sh`), [`mix`] holds the signal rules, and [`make_data`] plans and
//! writes the recordings:
//! - a bed from the part's background files only: a continuous speech layer (clips with 0.3–3 s
//!   pauses), an ambient layer (music, traffic, crowd or ambience, switching every 20–90 s with
//!   1 s crossfades, at −12…+3 dB against the speech), a −70 dBFS noise floor, and unlabelled
//!   hard negatives (footsteps, doors, keys) at event-like SNRs, at least 1 s from any event;
//! - events drawn label by label in rounds (so counts are balanced), each file reused at most
//!   `max_repeats` times, at least 4 s apart and 3 s from the edges, each `snr_db` above the bed
//!   by active-frame RMS ([`mix::snr_gain`]), SNRs taken in turn per label;
//! - the whole recording scaled so its peak is ≤ 0.9 when it was louder (recorded in the
//!   summary), which keeps every SNR.
//!
//! Every file is read and checked before anything is written. A seed fixes every choice.

pub mod devset;
pub mod mix;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::io::wav::{WavError, read_pcm, write_mono_pcm16};
use crate::rng::SplitMix64;
use devset::{Entry, Part, Role};
use mix::{FRAME, Prepared, RATE};

/// Why the development set could not be made; each names the file or list line.
#[derive(Debug, thiserror::Error)]
pub enum AudioEventsError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: {problem} (in {})", path.display())]
    List {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("line {line} of the list: {problem}: {}", path.display())]
    Source {
        line: usize,
        problem: String,
        path: PathBuf,
    },
    #[error("line {line} of the list: {source}")]
    Wav {
        line: usize,
        #[source]
        source: WavError,
    },
    #[error("part {part}: {problem} (in {})", list.display())]
    EmptyPart {
        part: Part,
        problem: String,
        list: PathBuf,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// What `vigil-train audio-events make-data` was asked for.
#[derive(Debug, Clone)]
pub struct MakeDataOptions {
    /// `DEST/sources` of the fetch script.
    pub sources: PathBuf,
    pub list: PathBuf,
    pub out: PathBuf,
    pub parts: Vec<Part>,
    /// Minutes of mix per part; `None` takes [`Part::default_minutes`].
    pub minutes: Option<f64>,
    /// Length of each recording, seconds.
    pub recording_s: f64,
    pub snr_db: Vec<f64>,
    pub seed: u64,
    /// How often one event file may be used in a part; a label whose files run out gets fewer
    /// events than the others (glass breaking: 2–3 files).
    pub max_repeats: usize,
    /// Minutes of extra recordings per part with no events at all (`bg-NN.wav`, an empty
    /// event list): hours of background are what a false-alarm rate of one per hour needs,
    /// and event recordings are only about half background.
    pub background_minutes: f64,
}

impl MakeDataOptions {
    pub fn new(sources: PathBuf, list: PathBuf, out: PathBuf) -> Self {
        Self {
            sources,
            list,
            out,
            parts: Part::ALL.to_vec(),
            minutes: None,
            recording_s: 300.0,
            snr_db: vec![0.0, 6.0, 12.0],
            seed: 7,
            max_repeats: 8,
            background_minutes: 0.0,
        }
    }
}

/// Longest event or hard negative laid into a mix.
const MAX_EVENT_S: f64 = 4.0;
/// Quiet time kept at each end of a recording and between an event's end and the next.
const EDGE_S: f64 = 3.0;
const MIN_GAP_S: f64 = 4.0;
/// The gap after the minimum is uniform in 0..this, so about one event per 9–10 s.
const EXTRA_GAP_S: f64 = 8.0;
/// Hard negatives keep this far from events, and come about once per `HARD_NEGATIVE_EVERY_S`
/// of the time left between events.
const HARD_NEGATIVE_CLEAR_S: f64 = 1.0;
const HARD_NEGATIVE_EVERY_S: f64 = 25.0;
/// The speech layer's level (RMS over active frames), ±3 dB per clip; low enough that events
/// at +12 dB seldom need the peak limit.
const SPEECH_RMS: f64 = 0.02;
const NOISE_FLOOR_RMS: f64 = 3e-4;
const PEAK: f32 = 0.9;

fn seconds(samples: usize) -> f64 {
    samples as f64 / f64::from(RATE)
}

fn samples(seconds: f64) -> usize {
    (seconds * f64::from(RATE)).round().max(0.0) as usize
}

/// The part's files, checked: every one exists, is a 16 kHz WAV and has sound; events and hard
/// negatives are kept cut and trimmed, backgrounds are read again when laid.
struct Library<'a> {
    sources: &'a Path,
    entries: Vec<&'a Entry>,
    prepared: BTreeMap<usize, Prepared>,
}

impl<'a> Library<'a> {
    fn check(sources: &'a Path, entries: Vec<&'a Entry>) -> Result<Library<'a>, AudioEventsError> {
        let mut prepared = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let audio = read_source(sources, entry)?;
            let silent = || AudioEventsError::Source {
                line: entry.line,
                problem: "the recording is silent".into(),
                path: entry.wav_path(sources),
            };
            if entry.role.is_event() || entry.role == Role::HardNegative {
                let clip = mix::prepare(&audio, samples(MAX_EVENT_S)).ok_or_else(silent)?;
                prepared.insert(index, clip);
            } else if mix::activity(&audio).is_none() {
                return Err(silent());
            }
        }
        Ok(Library {
            sources,
            entries,
            prepared,
        })
    }

    fn of(&self, role: Role) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].role == role)
            .collect()
    }
}

fn read_source(sources: &Path, entry: &Entry) -> Result<Vec<f32>, AudioEventsError> {
    let path = entry.wav_path(sources);
    if !path.is_file() {
        return Err(AudioEventsError::Source {
            line: entry.line,
            problem: format!(
                "{} {} of {} is missing; run scripts/fetch-audio-events.sh",
                entry.role, entry.path, entry.package
            ),
            path,
        });
    }
    let recording = read_pcm(&path).map_err(|source| AudioEventsError::Wav {
        line: entry.line,
        source,
    })?;
    if recording.rate != RATE {
        return Err(AudioEventsError::Source {
            line: entry.line,
            problem: format!("{} Hz, expected {RATE} Hz", recording.rate),
            path,
        });
    }
    Ok(recording.samples)
}

/// Draws from a list in shuffled rounds, so every item comes once before any comes again.
struct Deck {
    items: Vec<usize>,
    at: usize,
}

impl Deck {
    fn new(items: Vec<usize>) -> Self {
        let at = items.len();
        Self { items, at }
    }

    fn draw(&mut self, rng: &mut SplitMix64) -> Option<usize> {
        if self.items.is_empty() {
            return None;
        }
        if self.at == self.items.len() {
            rng.shuffle(&mut self.items);
            self.at = 0;
        }
        self.at += 1;
        Some(self.items[self.at - 1])
    }
}

/// One event laid into a recording.
#[derive(Debug, Clone)]
struct PlacedEvent {
    entry: usize,
    role: Role,
    at: usize,
    snr_db: f64,
}

/// One background clip laid into a recording, for `NN.background.csv`.
#[derive(Debug, Clone)]
struct PlacedBackground {
    start: usize,
    end: usize,
    role: Role,
    level_db: f64,
    entry: usize,
}

/// Hands out events label by label in shuffled rounds, each label's SNRs in turn, until every
/// label's files have been used `max_repeats` times.
struct EventQueue {
    decks: BTreeMap<Role, Deck>,
    left: BTreeMap<Role, usize>,
    snr_next: BTreeMap<Role, usize>,
    round: Vec<Role>,
    pending: Option<(Role, usize)>,
}

impl EventQueue {
    fn new(library: &Library, max_repeats: usize, snr_count: usize, rng: &mut SplitMix64) -> Self {
        let mut decks = BTreeMap::new();
        let mut left = BTreeMap::new();
        let mut snr_next = BTreeMap::new();
        for role in Role::EVENTS {
            let files = library.of(role);
            if files.is_empty() {
                continue;
            }
            left.insert(role, files.len() * max_repeats);
            snr_next.insert(role, rng.below(snr_count));
            decks.insert(role, Deck::new(files));
        }
        Self {
            decks,
            left,
            snr_next,
            round: Vec::new(),
            pending: None,
        }
    }

    fn peek(&mut self, rng: &mut SplitMix64) -> Option<(Role, usize)> {
        if self.pending.is_none() {
            if self.round.is_empty() {
                self.round = self
                    .left
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, _)| *r)
                    .collect();
                rng.shuffle(&mut self.round);
            }
            let role = self.round.pop()?;
            let entry = self.decks.get_mut(&role)?.draw(rng)?;
            self.pending = Some((role, entry));
        }
        self.pending
    }

    /// Takes the peeked event and its SNR.
    fn take(&mut self, snr_db: &[f64]) -> Option<(Role, usize, f64)> {
        let (role, entry) = self.pending.take()?;
        if let Some(n) = self.left.get_mut(&role) {
            *n = n.saturating_sub(1);
        }
        let next = self.snr_next.entry(role).or_insert(0);
        let snr = snr_db[*next % snr_db.len()];
        *next += 1;
        Some((role, entry, snr))
    }
}

/// One written recording's facts, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingSummary {
    pub name: String,
    pub duration_s: f64,
    pub events: usize,
    pub hard_negatives: usize,
    /// The factor the whole recording was scaled by to keep its peak ≤ 0.9 (1 = none).
    pub scale: f64,
}

/// A label's events in one part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LabelSummary {
    pub events: usize,
    /// Seconds of active extent.
    pub seconds: f64,
    /// Distinct source files used.
    pub files: usize,
    /// Events per SNR (dB, as written in the CSV).
    pub snr_db: BTreeMap<String, usize>,
}

/// A role's source files in one part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceSummary {
    pub files_listed: usize,
    pub files_used: usize,
    pub packages: Vec<String>,
}

/// `DIR/<part>/summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PartSummary {
    pub part: String,
    pub seed: u64,
    pub recordings: Vec<RecordingSummary>,
    pub minutes: f64,
    pub snr_db: Vec<f64>,
    pub events: BTreeMap<String, LabelSummary>,
    /// Seconds of each background role laid (the ambient layer's crossfades counted in both).
    pub background_s: BTreeMap<String, f64>,
    pub hard_negatives: usize,
    pub sources: BTreeMap<String, SourceSummary>,
    /// How often each event file was used, by `package/path`.
    pub event_sources: BTreeMap<String, usize>,
}

impl PartSummary {
    /// A plain-text table of the part.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let snr_names: Vec<String> = self.snr_db.iter().map(|s| format!("{s}")).collect();
        let _ = writeln!(
            out,
            "{}: {} recordings, {:.1} min",
            self.part,
            self.recordings.len(),
            self.minutes
        );
        let _ = writeln!(
            out,
            "  {:<15} {:>6} {:>6} {:>8}   events per SNR dB {}",
            "label",
            "events",
            "files",
            "seconds",
            snr_names.join("/")
        );
        for (label, s) in &self.events {
            let per_snr: Vec<String> = snr_names
                .iter()
                .map(|n| s.snr_db.get(n).copied().unwrap_or(0).to_string())
                .collect();
            let _ = writeln!(
                out,
                "  {:<15} {:>6} {:>6} {:>8.1}   {}",
                label,
                s.events,
                s.files,
                s.seconds,
                per_snr.join("/")
            );
        }
        let bed: Vec<String> = self
            .background_s
            .iter()
            .map(|(r, s)| format!("{r} {s:.0} s"))
            .collect();
        let _ = writeln!(
            out,
            "  background: {}; hard negatives {}",
            bed.join(", "),
            self.hard_negatives
        );
        let scaled: Vec<&RecordingSummary> =
            self.recordings.iter().filter(|r| r.scale < 1.0).collect();
        let lowest = scaled.iter().map(|r| r.scale).fold(1.0, f64::min);
        let _ = writeln!(
            out,
            "  peak limit: {} of {} recordings scaled down (smallest factor {:.3})",
            scaled.len(),
            self.recordings.len(),
            lowest
        );
        out
    }
}

/// Makes the mixes of every asked part; returns one summary per part.
pub fn make_data(options: &MakeDataOptions) -> Result<Vec<PartSummary>, AudioEventsError> {
    if options.snr_db.is_empty() || options.snr_db.iter().any(|s| !s.is_finite()) {
        return Err(AudioEventsError::Config(format!(
            "--snr-db {:?}: give at least one finite SNR in dB",
            options.snr_db
        )));
    }
    let shortest = 2.0 * EDGE_S + MAX_EVENT_S;
    if options.recording_s.is_nan() || options.recording_s < shortest {
        return Err(AudioEventsError::Config(format!(
            "recordings of {} s are too short: at least {} s",
            options.recording_s, shortest
        )));
    }
    if options.max_repeats == 0 {
        return Err(AudioEventsError::Config(
            "--max-repeats 0 would leave no events".into(),
        ));
    }
    if !(options.background_minutes.is_finite() && options.background_minutes >= 0.0) {
        return Err(AudioEventsError::Config(format!(
            "--background-minutes {}: expected a number ≥ 0",
            options.background_minutes
        )));
    }
    if let Some(m) = options.minutes.filter(|m| !(m.is_finite() && *m > 0.0)) {
        return Err(AudioEventsError::Config(format!(
            "--minutes {m}: expected a positive number"
        )));
    }
    let entries = devset::read_list(&options.list)?;
    let mut parts = options.parts.clone();
    parts.sort();
    parts.dedup();
    // Check every part's list and files before writing anything.
    let mut libraries = Vec::new();
    for &part in &parts {
        let chosen: Vec<&Entry> = entries.iter().filter(|e| e.part == part).collect();
        let empty = |problem: &str| AudioEventsError::EmptyPart {
            part,
            problem: problem.into(),
            list: options.list.clone(),
        };
        if chosen.is_empty() {
            return Err(empty("no files in the list"));
        }
        if !chosen.iter().any(|e| e.role.is_event()) {
            return Err(empty("no event files in the list"));
        }
        if !chosen.iter().any(|e| e.role == Role::Speech) {
            return Err(empty("no speech files for the bed in the list"));
        }
        log::info!("{part}: checking {} source files", chosen.len());
        libraries.push((part, Library::check(&options.sources, chosen)?));
    }
    let mut summaries = Vec::new();
    for (part, library) in &libraries {
        let started = std::time::Instant::now();
        summaries.push(make_part(options, *part, library)?);
        log::info!(
            "{part}: written in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(summaries)
}

fn make_part(
    options: &MakeDataOptions,
    part: Part,
    library: &Library,
) -> Result<PartSummary, AudioEventsError> {
    let dir = options.out.join(part.name());
    let write_error = |path: &Path, source: std::io::Error| AudioEventsError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, e))?;
    clear_old_outputs(&dir).map_err(|e| write_error(&dir, e))?;

    let minutes = options.minutes.unwrap_or(part.default_minutes());
    let count = ((minutes * 60.0 / options.recording_s).round() as usize).max(1);
    let quiet = (options.background_minutes * 60.0 / options.recording_s).round() as usize;
    let width = (count + quiet).to_string().len().max(2);
    let length = samples(options.recording_s);
    let part_index = Part::ALL.iter().position(|p| *p == part).unwrap_or(0) as u64;
    let mut rng = SplitMix64::derive(options.seed, 0xA0D1_0000 + part_index);
    let mut queue = EventQueue::new(library, options.max_repeats, options.snr_db.len(), &mut rng);
    let mut speech = Deck::new(library.of(Role::Speech));
    let mut ambient: BTreeMap<Role, Deck> = Role::AMBIENT
        .iter()
        .map(|&r| (r, Deck::new(library.of(r))))
        .filter(|(_, d)| !d.items.is_empty())
        .collect();
    let mut hard = Deck::new(library.of(Role::HardNegative));
    let (snr_low, snr_high) = options
        .snr_db
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });

    let mut summary = PartSummary {
        part: part.name().into(),
        seed: options.seed,
        recordings: Vec::new(),
        minutes: seconds(length * (count + quiet)) / 60.0,
        snr_db: options.snr_db.clone(),
        events: BTreeMap::new(),
        background_s: BTreeMap::new(),
        hard_negatives: 0,
        sources: BTreeMap::new(),
        event_sources: BTreeMap::new(),
    };
    let mut used: BTreeMap<Role, std::collections::BTreeSet<usize>> = BTreeMap::new();
    for n in 1..=count + quiet {
        // Event-free recordings come after the others, named apart.
        let name = if n > count {
            format!("bg-{:0width$}", n - count)
        } else {
            format!("{n:0width$}")
        };
        // 1. Where the events go.
        let mut events = Vec::new();
        let mut t = samples(EDGE_S + rng.range(0.0, EXTRA_GAP_S));
        let last_end = length - samples(EDGE_S);
        while let Some((_, entry)) = queue.peek(&mut rng).filter(|_| n <= count) {
            let len = library.prepared[&entry].samples.len();
            if t + len > last_end {
                break;
            }
            let Some((role, entry, snr_db)) = queue.take(&options.snr_db) else {
                break;
            };
            events.push(PlacedEvent {
                entry,
                role,
                at: t,
                snr_db,
            });
            t += len + samples(MIN_GAP_S + rng.range(0.0, EXTRA_GAP_S));
        }
        // 2. The bed: speech, ambient layer, noise floor.
        let mut bed = vec![0.0f32; length];
        let mut background = Vec::new();
        lay_speech(library, &mut speech, &mut rng, &mut bed, &mut background)?;
        lay_ambient(library, &mut ambient, &mut rng, &mut bed, &mut background)?;
        for s in bed.iter_mut() {
            *s += (rng.normal() * NOISE_FLOOR_RMS) as f32;
        }
        // 3. Hard negatives in the gaps, clear of events, at event-like SNRs over the bed.
        let mut hard_placed = Vec::new();
        if !hard.items.is_empty() {
            let clear = samples(HARD_NEGATIVE_CLEAR_S);
            let mut spans: Vec<(usize, usize)> = Vec::new();
            let mut from = 0;
            for e in &events {
                spans.push((from, e.at.saturating_sub(clear)));
                from = e.at + library.prepared[&e.entry].samples.len() + clear;
            }
            spans.push((from, length));
            // Each span gets on average one per HARD_NEGATIVE_EVERY_S of its length, at
            // uniform times in what is left of it.
            for (from, to) in spans {
                let expected = seconds(to.saturating_sub(from)) / HARD_NEGATIVE_EVERY_S;
                let count = (expected + rng.uniform()).floor() as usize;
                let mut cursor = from;
                for _ in 0..count {
                    let Some(entry) = hard.draw(&mut rng) else {
                        break;
                    };
                    let clip = &library.prepared[&entry];
                    let len = clip.samples.len();
                    if cursor + len > to {
                        break;
                    }
                    let p = cursor + samples(rng.range(0.0, seconds(to - cursor - len)));
                    let snr_db = rng.range(snr_low, snr_high);
                    let gain = mix::snr_gain(&bed, clip, p, snr_db);
                    hard_placed.push((p, entry, len, gain, snr_db));
                    cursor = p + len + samples(0.5);
                }
            }
            for &(p, entry, len, gain, snr_db) in &hard_placed {
                mix::lay(&mut bed, &library.prepared[&entry].samples, p, gain, 0, 0);
                background.push(PlacedBackground {
                    start: p,
                    end: p + len,
                    role: Role::HardNegative,
                    level_db: snr_db,
                    entry,
                });
            }
        }
        // 4. Events over the finished bed.
        let mut out = bed.clone();
        let mut rows = String::from("start,end,label,snr_db,source\n");
        for e in &events {
            let clip = &library.prepared[&e.entry];
            let gain = mix::snr_gain(&bed, clip, e.at, e.snr_db);
            mix::lay(&mut out, &clip.samples, e.at, gain, 0, 0);
            let (start, end) = (e.at + clip.activity.first, e.at + clip.activity.end);
            let entry = library.entries[e.entry];
            let _ = writeln!(
                rows,
                "{:.3},{:.3},{},{},{}",
                seconds(start),
                seconds(end),
                e.role,
                e.snr_db,
                entry.source()
            );
            let label = summary.events.entry(e.role.name().into()).or_default();
            label.events += 1;
            label.seconds += seconds(end - start);
            *label.snr_db.entry(format!("{}", e.snr_db)).or_default() += 1;
            *summary.event_sources.entry(entry.source()).or_default() += 1;
            used.entry(e.role).or_default().insert(e.entry);
        }
        let scale = mix::limit_peak(&mut out, PEAK);
        if scale < 1.0 {
            log::info!(
                "{part}/{name}.wav: scaled by {scale:.3} to keep its peak at {PEAK}; SNRs unchanged"
            );
        }
        // 5. Files.
        let wav = dir.join(format!("{name}.wav"));
        write_mono_pcm16(&wav, RATE, &out).map_err(|e| write_error(&wav, e))?;
        let csv = dir.join(format!("{name}.events.csv"));
        std::fs::write(&csv, rows).map_err(|e| write_error(&csv, e))?;
        background.sort_by_key(|b| (b.start, b.role));
        let mut rows = String::from("start,end,role,level_db,source\n");
        for b in &background {
            let _ = writeln!(
                rows,
                "{:.3},{:.3},{},{:.1},{}",
                seconds(b.start),
                seconds(b.end),
                b.role,
                b.level_db,
                library.entries[b.entry].source()
            );
            *summary
                .background_s
                .entry(b.role.name().into())
                .or_default() += seconds(b.end - b.start);
            used.entry(b.role).or_default().insert(b.entry);
        }
        let csv = dir.join(format!("{name}.background.csv"));
        std::fs::write(&csv, rows).map_err(|e| write_error(&csv, e))?;
        summary.hard_negatives += hard_placed.len();
        summary.recordings.push(RecordingSummary {
            name: format!("{name}.wav"),
            duration_s: seconds(length),
            events: events.len(),
            hard_negatives: hard_placed.len(),
            scale: f64::from(scale),
        });
        log::info!(
            "{part}/{name}.wav: {} events, {} hard negatives",
            events.len(),
            hard_placed.len()
        );
    }
    for role in Role::ALL {
        let listed = library.of(role);
        if listed.is_empty() {
            continue;
        }
        let mut packages: Vec<String> = listed
            .iter()
            .map(|&i| library.entries[i].package.clone())
            .collect();
        packages.dedup();
        packages.sort();
        packages.dedup();
        let files_used = used.get(&role).map_or(0, |s| s.len());
        if let Some(label) = summary.events.get_mut(role.name()) {
            label.files = files_used;
        }
        summary.sources.insert(
            role.name().into(),
            SourceSummary {
                files_listed: listed.len(),
                files_used,
                packages,
            },
        );
    }
    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| write_error(&path, std::io::Error::other(e)))?;
    std::fs::write(&path, json + "\n").map_err(|e| write_error(&path, e))?;
    Ok(summary)
}

/// Removes what an earlier run wrote into a part's folder, so fewer recordings leave no stale
/// ones behind.
fn clear_old_outputs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = name == "summary.json"
            || [".wav", ".events.csv", ".background.csv"]
                .iter()
                .any(|ext| {
                    name.strip_suffix(ext).is_some_and(|stem| {
                        let stem = stem.strip_prefix("bg-").unwrap_or(stem);
                        stem.chars().all(|c| c.is_ascii_digit())
                    })
                });
        if ours && path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The speech layer: clips end to end with 0.3–3 s pauses, each at SPEECH_RMS ±3 dB, 10 ms fades.
fn lay_speech(
    library: &Library,
    deck: &mut Deck,
    rng: &mut SplitMix64,
    bed: &mut [f32],
    background: &mut Vec<PlacedBackground>,
) -> Result<(), AudioEventsError> {
    let fade = samples(0.01);
    let mut p = samples(rng.range(0.0, 1.5));
    while p < bed.len() {
        let Some(entry) = deck.draw(rng) else { break };
        let clip = read_source(library.sources, library.entries[entry])?;
        let level_db = rng.range(-3.0, 3.0);
        let rms = mix::active_rms(&clip);
        let len = clip.len().min(bed.len() - p);
        if rms > 0.0 {
            let gain = (SPEECH_RMS * 10f64.powf(level_db / 20.0) / rms) as f32;
            mix::lay(bed, &clip[..len], p, gain, fade, fade);
            background.push(PlacedBackground {
                start: p,
                end: p + len,
                role: Role::Speech,
                level_db,
                entry,
            });
        }
        p += len + samples(rng.range(0.3, 3.0));
    }
    Ok(())
}

/// The ambient layer: segments of 20–90 s, each of one kind (a different kind from the last
/// when there is a choice) at −12…+3 dB against the speech level, clips within a segment
/// overlapping by 0.25 s and segments crossfading over 1 s.
fn lay_ambient(
    library: &Library,
    decks: &mut BTreeMap<Role, Deck>,
    rng: &mut SplitMix64,
    bed: &mut [f32],
    background: &mut Vec<PlacedBackground>,
) -> Result<(), AudioEventsError> {
    let kinds: Vec<Role> = decks.keys().copied().collect();
    if kinds.is_empty() {
        return Ok(());
    }
    let crossfade = samples(1.0);
    let overlap = samples(0.25);
    let mut p = 0;
    let mut last: Option<Role> = None;
    while p < bed.len() {
        let choices: Vec<Role> = kinds
            .iter()
            .copied()
            .filter(|k| kinds.len() == 1 || Some(*k) != last)
            .collect();
        let kind = choices[rng.below(choices.len())];
        last = Some(kind);
        let level_db = rng.range(-12.0, 3.0);
        let target = SPEECH_RMS * 10f64.powf(level_db / 20.0);
        let seg_end = (p + samples(rng.range(20.0, 90.0)) + crossfade).min(bed.len());
        let Some(deck) = decks.get_mut(&kind) else {
            break;
        };
        let mut q = p;
        let mut first = true;
        while q < seg_end {
            let Some(entry) = deck.draw(rng) else { break };
            let clip = read_source(library.sources, library.entries[entry])?;
            let rms = mix::active_rms(&clip);
            let len = clip.len().min(seg_end - q);
            if rms <= 0.0 || len < 2 * FRAME {
                q += len.max(FRAME);
                continue;
            }
            let gain = (target / rms) as f32;
            let fade_in = if first && p > 0 { crossfade } else { overlap };
            let fade_out = if q + len >= seg_end && seg_end < bed.len() {
                crossfade
            } else {
                overlap
            };
            mix::lay(bed, &clip[..len], q, gain, fade_in, fade_out);
            background.push(PlacedBackground {
                start: q,
                end: q + len,
                role: kind,
                level_db,
                entry,
            });
            first = false;
            q += len.saturating_sub(overlap).max(FRAME);
        }
        p = seg_end.saturating_sub(crossfade).max(p + FRAME);
        if seg_end >= bed.len() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
