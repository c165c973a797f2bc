use std::path::{Path, PathBuf};

use super::devset::{Part, Role, event_labels};
use super::mix::{self, FRAME, RATE};
use super::{AudioEventsError, MakeDataOptions, make_data};
use crate::eval::events::read_marked_events;
use crate::io::wav::{read_pcm, write_mono_pcm16};
use crate::rng::SplitMix64;

fn noise(n: usize, rms: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| (rng.normal() * rms) as f32).collect()
}

fn tone(seconds: f64, hz: f64, amplitude: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            (amplitude * (std::f64::consts::TAU * hz * i as f64 / f64::from(RATE)).sin()) as f32
        })
        .collect()
}

/// A burst that decays, with quiet lead-in and tail, so the active extent is inside the file.
fn burst(seconds: f64, seed: u64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    let lead = RATE as usize / 5;
    let mut out = vec![0.0f32; lead];
    let body = noise(n, 0.3, seed);
    out.extend(
        body.iter()
            .enumerate()
            .map(|(i, s)| s * (-3.0 * i as f32 / n as f32).exp()),
    );
    out.extend(vec![0.0f32; lead]);
    out
}

/// Writes a synthetic source tree and a list for the validation and test parts; returns
/// (sources, list).
fn synthetic_set(dir: &Path) -> (PathBuf, PathBuf) {
    let sources = dir.join("sources");
    let mut rows = vec!["part\trole\tpackage\tversion\tpath\tduration_s\tlicence".to_string()];
    let mut add = |part: &str, role: &str, name: &str, samples: Vec<f32>| {
        let package = format!("pkg-{part}");
        let path = format!("usr/share/{role}/{name}.ogg");
        let wav = sources.join(&package).join(format!("{path}.wav"));
        std::fs::create_dir_all(wav.parent().expect("parent")).expect("mkdir");
        write_mono_pcm16(&wav, RATE, &samples).expect("write");
        let duration = samples.len() as f64 / f64::from(RATE);
        rows.push(format!(
            "{part}\t{role}\t{package}\t1.0-1\t{path}\t{duration:.2}\tGPL-2+"
        ));
    };
    for (p, part) in ["validation", "test"].iter().enumerate() {
        let seed = 100 * p as u64;
        for k in 0..3 {
            let mut speech = noise(RATE as usize * 2, 0.1, seed + k);
            for (i, s) in speech.iter_mut().enumerate() {
                *s *= (0.5 + 0.5 * (i as f32 / 800.0).sin()).abs();
            }
            add(part, "speech", &format!("s{k}"), speech);
        }
        add(part, "music", "m0", tone(7.0, 220.0, 0.2));
        add(
            part,
            "traffic",
            "t0",
            noise(RATE as usize * 5, 0.05, seed + 9),
        );
        add(part, "hard_negative", "step", burst(0.2, seed + 11));
        add(part, "hard_negative", "door", burst(0.5, seed + 12));
        add(part, "gunshot", "g0", burst(0.4, seed + 20));
        add(part, "gunshot", "g1", burst(0.6, seed + 21));
        add(part, "explosion", "e0", burst(6.0, seed + 22)); // trimmed to 4 s
        add(part, "screaming", "sc0", tone(1.5, 900.0, 0.3));
        add(part, "shout", "sh0", tone(0.8, 400.0, 0.3));
        add(part, "impact", "i0", burst(0.3, seed + 23));
        add(part, "glass_breaking", "gl0", burst(0.7, seed + 24));
    }
    let list = dir.join("devset.tsv");
    std::fs::write(&list, rows.join("\n") + "\n").expect("list");
    (sources, list)
}

fn options(sources: &Path, list: &Path, out: &Path) -> MakeDataOptions {
    let mut o = MakeDataOptions::new(sources.to_path_buf(), list.to_path_buf(), out.to_path_buf());
    o.parts = vec![Part::Validation, Part::Test];
    o.minutes = Some(2.0);
    o.recording_s = 60.0;
    o
}

#[test]
fn snr_rule_holds_in_the_written_mix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bed = noise(RATE as usize * 10, 0.05, 1);
    // A tone with a quiet lead-in: the active part is the tone only.
    let mut event = vec![0.0f32; 2000];
    event.extend(tone(1.0, 700.0, 0.5));
    let clip = mix::prepare(&event, RATE as usize * 4).expect("sound");
    for (snr, expect_scaling) in [(0.0, false), (6.0, false), (12.0, false), (30.0, true)] {
        let at = RATE as usize * 3 + 77;
        let gain = mix::snr_gain(&bed, &clip, at, snr);
        let mut out = bed.clone();
        mix::lay(&mut out, &clip.samples, at, gain, 0, 0);
        let scale = mix::limit_peak(&mut out, 0.9);
        assert_eq!(scale < 1.0, expect_scaling, "snr {snr}: scale {scale}");
        let path = dir.path().join(format!("mix{snr}.wav"));
        write_mono_pcm16(&path, RATE, &out).expect("write");
        let written = read_pcm(&path).expect("read").samples;
        let scaled_bed: Vec<f32> = bed.iter().map(|s| s * scale).collect();
        let event_back: Vec<f32> = written
            .iter()
            .zip(&scaled_bed)
            .map(|(m, b)| m - b)
            .collect();
        let len = clip.samples.len();
        let frames = &clip.activity.frames;
        let measured = 20.0
            * (mix::rms_over(&event_back, at, len, frames)
                / mix::rms_over(&scaled_bed, at, len, frames))
            .log10();
        assert!(
            (measured - snr).abs() < 0.1,
            "asked {snr} dB, measured {measured:.3} dB"
        );
    }
}

#[test]
fn same_seed_same_files_other_seed_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, list) = synthetic_set(dir.path());
    let run = |out: &str, seed: u64| {
        let mut o = options(&sources, &list, &dir.path().join(out));
        o.seed = seed;
        make_data(&o).expect("make-data");
        let mut files = Vec::new();
        for part in ["validation", "test"] {
            let mut names: Vec<_> = std::fs::read_dir(dir.path().join(out).join(part))
                .expect("dir")
                .map(|e| e.expect("entry").path())
                .collect();
            names.sort();
            for n in names {
                files.push((
                    n.file_name().map(|n| n.to_owned()),
                    std::fs::read(&n).expect("read"),
                ));
            }
        }
        files
    };
    let a = run("a", 7);
    let b = run("b", 7);
    let c = run("c", 8);
    assert_eq!(a.len(), 2 * (2 * 3 + 1));
    assert!(a == b, "two runs with seed 7 differ");
    assert!(a != c, "seeds 7 and 8 made the same files");
}

#[test]
fn events_are_apart_balanced_and_parse_as_marked_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, list) = synthetic_set(dir.path());
    let out = dir.path().join("mix");
    let mut o = options(&sources, &list, &out);
    o.minutes = Some(5.0);
    let summaries = make_data(&o).expect("make-data");
    let labels = event_labels();
    for summary in &summaries {
        let mut total = 0;
        for rec in &summary.recordings {
            let stem = rec.name.trim_end_matches(".wav");
            let csv = out.join(&summary.part).join(format!("{stem}.events.csv"));
            let events = read_marked_events(&csv, &labels, rec.duration_s).expect("parses");
            assert_eq!(events.len(), rec.events);
            total += events.len();
            for e in &events {
                assert!(
                    e.start >= 3.0 && e.end <= rec.duration_s - 3.0,
                    "{e:?} near an edge"
                );
                assert!(e.end - e.start <= 4.0 + 1e-9, "{e:?} longer than 4 s");
            }
            for pair in events.windows(2) {
                assert!(
                    pair[1].start - pair[0].end >= 4.0 - 1e-3,
                    "{pair:?} closer than 4 s"
                );
            }
            let text = std::fs::read_to_string(&csv).expect("csv");
            assert!(text.starts_with("start,end,label,snr_db,source\n"));
            let wav = read_pcm(&out.join(&summary.part).join(&rec.name)).expect("wav");
            assert_eq!(wav.rate, RATE);
            assert!(wav.samples.iter().all(|s| s.abs() <= 0.9 + 1e-4));
        }
        assert!(total > 20, "{} events in {}", total, summary.part);
        // Balanced: every label within one of the others (none runs out of repeats here).
        let counts: Vec<usize> = summary.events.values().map(|l| l.events).collect();
        assert_eq!(counts.len(), 6, "{:?}", summary.events.keys());
        let (lo, hi) = (counts.iter().min(), counts.iter().max());
        assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{counts:?}");
        assert!(summary.hard_negatives > 0);
        // SNRs taken in turn per label.
        for l in summary.events.values() {
            let n: Vec<usize> = l.snr_db.values().copied().collect();
            assert!(
                n.iter()
                    .max()
                    .zip(n.iter().min())
                    .is_some_and(|(h, l)| h - l <= 1)
            );
        }
    }
}

#[test]
fn repeats_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, list) = synthetic_set(dir.path());
    let mut o = options(&sources, &list, &dir.path().join("mix"));
    o.minutes = Some(5.0);
    o.max_repeats = 2;
    let summaries = make_data(&o).expect("make-data");
    for s in &summaries {
        assert!(
            s.event_sources.values().all(|&n| n <= 2),
            "{:?}",
            s.event_sources
        );
        assert_eq!(s.events["glass_breaking"].events, 2);
    }
}

fn error_of(list_text: &str, tweak: impl FnOnce(&Path, &mut MakeDataOptions)) -> (String, bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, list) = synthetic_set(dir.path());
    let original = std::fs::read_to_string(&list).expect("list");
    std::fs::write(&list, original + list_text).expect("list");
    let out = dir.path().join("mix");
    let mut o = options(&sources, &list, &out);
    tweak(&sources, &mut o);
    let err = make_data(&o).expect_err("should fail");
    (err.to_string(), out.exists())
}

#[test]
fn malformed_lines_are_named() {
    // The synthetic list has 1 header + 2 × 14 rows, so the added line is line 30.
    let (msg, wrote) = error_of("test\tgunshot\tpkg\t1\tx.ogg\t1.0\n", |_, _| {});
    assert!(
        msg.contains("line 30") && msg.contains("6 tab-separated columns"),
        "{msg}"
    );
    assert!(!wrote);
    let (msg, _) = error_of("dev\tgunshot\tpkg\t1\tx.ogg\t1.0\tGPL\n", |_, _| {});
    assert!(
        msg.contains("line 30") && msg.contains("unknown part \"dev\""),
        "{msg}"
    );
    let (msg, _) = error_of("test\tsiren\tpkg\t1\tx.ogg\t1.0\tGPL\n", |_, _| {});
    assert!(
        msg.contains("line 30") && msg.contains("unknown role \"siren\""),
        "{msg}"
    );
    let (msg, _) = error_of("test\tgunshot\tpkg\t1\tx.ogg\tlong\tGPL\n", |_, _| {});
    assert!(msg.contains("line 30") && msg.contains("duration"), "{msg}");
}

#[test]
fn missing_and_wrong_rate_sources_are_named_before_anything_is_written() {
    let (msg, wrote) = error_of("test\tgunshot\tpkg-x\t1\tgone.ogg\t1.0\tGPL\n", |_, _| {});
    assert!(
        msg.contains("line 30") && msg.contains("pkg-x/gone.ogg.wav"),
        "{msg}"
    );
    assert!(msg.contains("fetch-audio-events"), "{msg}");
    // Validation would be written first; the bad test file stops the run before it.
    assert!(!wrote, "output written before every source was checked");

    let (msg, wrote) = error_of(
        "test\tgunshot\tpkg-8k\t1\tslow.ogg\t1.0\tGPL\n",
        |sources, _| {
            let wav = sources.join("pkg-8k/slow.ogg.wav");
            std::fs::create_dir_all(wav.parent().expect("parent")).expect("mkdir");
            write_mono_pcm16(&wav, 8000, &tone(1.0, 300.0, 0.3)).expect("write");
        },
    );
    assert!(
        msg.contains("8000 Hz") && msg.contains("slow.ogg.wav"),
        "{msg}"
    );
    assert!(msg.contains("line 30"), "{msg}");
    assert!(!wrote);

    let (msg, _) = error_of(
        "test\tgunshot\tpkg-0\t1\tquiet.ogg\t1.0\tGPL\n",
        |sources, _| {
            let wav = sources.join("pkg-0/quiet.ogg.wav");
            std::fs::create_dir_all(wav.parent().expect("parent")).expect("mkdir");
            write_mono_pcm16(&wav, RATE, &[0.0; 4000]).expect("write");
        },
    );
    assert!(
        msg.contains("silent") && msg.contains("quiet.ogg.wav"),
        "{msg}"
    );
}

#[test]
fn an_empty_part_is_refused() {
    let (msg, wrote) = error_of("", |_, o| o.parts = vec![Part::Train]);
    assert!(
        msg.contains("part train") && msg.contains("no files"),
        "{msg}"
    );
    assert!(!wrote);
    // A part with backgrounds but no events.
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, list) = synthetic_set(dir.path());
    let text = std::fs::read_to_string(&list).expect("list");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let role = l.split('\t').nth(1).unwrap_or("");
            !l.starts_with("test") || Role::parse(role).is_some_and(|r| !r.is_event())
        })
        .collect();
    std::fs::write(&list, kept.join("\n")).expect("list");
    let err = make_data(&options(&sources, &list, &dir.path().join("mix"))).expect_err("fails");
    assert!(
        matches!(
            err,
            AudioEventsError::EmptyPart {
                part: Part::Test,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no event files"), "{err}");
}

#[test]
fn active_extent_is_what_the_csv_marks() {
    // One event with a 0.2 s silent lead: its CSV start is where the sound starts.
    let b = burst(0.5, 5);
    let clip = mix::prepare(&b, RATE as usize * 4).expect("sound");
    let lead = RATE as usize / 5;
    let first_loud = mix::activity(&b).expect("sound").first;
    assert!(first_loud >= lead - FRAME && first_loud <= lead + FRAME);
    assert_eq!(clip.activity.first, 0);
    assert!(clip.samples.len() <= b.len() - first_loud);
}

#[test]
fn background_recordings_hold_no_events_and_sit_beside_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, list) = synthetic_set(dir.path());
    let out = dir.path().join("mix");
    let mut o = options(&sources, &list, &out);
    o.parts = vec![Part::Test];
    o.background_minutes = 2.0;
    let summaries = make_data(&o).expect("make-data");
    let names: Vec<&str> = summaries[0]
        .recordings
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["01.wav", "02.wav", "bg-01.wav", "bg-02.wav"]);
    assert_eq!(summaries[0].minutes, 4.0);
    for rec in &summaries[0].recordings[2..] {
        assert_eq!(rec.events, 0, "{rec:?}");
        let csv = out
            .join("test")
            .join(rec.name.replace(".wav", ".events.csv"));
        let events = read_marked_events(&csv, &event_labels(), rec.duration_s).expect("parses");
        assert!(events.is_empty());
    }
    // A second run clears the first's files, background ones included.
    o.background_minutes = 0.0;
    make_data(&o).expect("make-data again");
    assert!(!out.join("test").join("bg-01.wav").exists());
    o.background_minutes = -1.0;
    let error = make_data(&o).expect_err("negative minutes");
    assert!(
        error.to_string().contains("--background-minutes"),
        "{error}"
    );
}
