//! `vigil-train audio-events fit` end to end on a tiny generated set: the demo's gunshot-like
//! blasts over its speech-like background, as train, validation and test parts. The fit
//! trains the head, chooses settings on validation and reports test; the head is installed in
//! a manifest beside the shipped YAMNet, and `vigil eval --dataset` runs the test part through
//! the runtime with the fitted profile section. The runtime's counts must equal the fit's
//! test report: both play the same tracker over the same scores. Then the bad inputs.
//!
//! Needs the fetched YAMNet (`scripts/fetch-models.sh`); without it the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil::capture::synth::{SynthConfig, SynthEvent, SynthEventKind, render};

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// One part: `count` recordings of 40 s with blasts at known times (and one without any).
fn write_part(dir: &Path, seed: u64, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for r in 0..count {
        let times: Vec<f32> = if r == 0 {
            Vec::new()
        } else {
            vec![6.0 + r as f32, 19.0, 31.0 - r as f32]
        };
        let config = SynthConfig {
            rate: 16_000,
            duration_s: 40.0,
            events: times
                .iter()
                .map(|&at_s| SynthEvent {
                    at_s,
                    kind: SynthEventKind::Gunshot,
                })
                .collect(),
            realtime: false,
            block_ms: 100,
            seed: seed * 100 + r as u64,
        };
        let name = format!("{:02}", r + 1);
        vigil::io::wav::write_mono_pcm16(
            &dir.join(format!("{name}.wav")),
            16_000,
            &render(&config),
        )
        .unwrap();
        let mut events = String::from("start,end,label\n");
        for t in times {
            // Two shots 0.35 s apart and their tails.
            events.push_str(&format!("{t},{},gunshot\n", t + 0.8));
        }
        std::fs::write(dir.join(format!("{name}.events.csv")), events).unwrap();
    }
}

fn train_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil-train"))
}

/// Events and detections of a report table's row, the events in column `column` (1-based)
/// and the detections after it.
fn counts(table_row: &str, column: usize) -> (usize, usize) {
    let cells: Vec<&str> = table_row.split('|').map(str::trim).collect();
    let number = |s: &str| s.split_whitespace().next().unwrap().parse().unwrap();
    (number(cells[column]), number(cells[column + 1]))
}

#[test]
fn a_fit_installs_a_head_the_runtime_runs_and_reports_what_the_runtime_measures() {
    assert!(
        repo("models/cache/yamnet/model.onnx").exists(),
        "YAMNet is absent: the test command fetches it (scripts/fetch-models.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_part(&data.join("train"), 1, 4);
    write_part(&data.join("validation"), 2, 3);
    write_part(&data.join("test"), 3, 3);
    // A models folder holding the shipped manifest (YAMNet's entry and files) for the head
    // to be installed beside.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(repo("models/manifest.toml"), models.join("manifest.toml")).unwrap();
    std::os::unix::fs::symlink(repo("models/cache"), models.join("cache")).unwrap();
    let run = dir.path().join("run");
    let out = train_cmd()
        .args([
            "audio-events",
            "fit",
            "--labels",
            "gunshot",
            "--epochs",
            "30",
        ])
        .args(["--false-alarms-per-hour", "10"])
        // A finer hop than YAMNet's own, so the runtime agreeing below shows it reads the hop
        // from the fitted section.
        .args(["--patch-hop-frames", "24"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .arg("--install")
        .arg(&models)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run.join("head.onnx").exists() && run.join("report.md").exists());
    let test_part = text
        .split("Test (never seen by the fit)")
        .nth(1)
        .expect(&text);
    let fit_row = test_part
        .lines()
        .find(|l| l.starts_with("| gunshot |"))
        .expect(&text);
    // | label | score | on | open_after | events | detected | …
    let (events, fit_detected) = counts(fit_row, 5);
    assert_eq!(events, 6, "{text}");
    assert!(fit_detected >= 3, "the blasts are easy: {text}");
    let manifest = std::fs::read_to_string(models.join("manifest.toml")).unwrap();
    assert!(manifest.contains("name = \"audio-events\""), "{manifest}");

    // The runtime with the installed head and the fitted section.
    let section = std::fs::read_to_string(run.join("audio_events.toml")).unwrap();
    assert!(section.contains("patch_hop_frames = 24"), "{section}");
    let profile = dir.path().join("site.toml");
    std::fs::write(
        &profile,
        format!(
            "[box]\nname = \"site\"\nmanifest = \"{}\"\n\n[alerts]\njournal = \"{}\"\n\
             sinks = [{{ kind = \"jsonl\", name = \"log\", path = \"-\" }}]\n\n[[stream]]\n\
             name = \"mic0\"\nmodel = \"audio-events\"\n\
             source = {{ kind = \"gstreamer\", pipeline = \"autoaudiosrc\" }}\n\n{section}",
            models.join("manifest.toml").display(),
            dir.path().join("journal").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["eval", "--labels", "gunshot", "--profile"])
        .arg(&profile)
        .arg("--dataset")
        .arg(data.join("test"))
        .output()
        .unwrap();
    let eval = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{eval}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eval_row = eval
        .lines()
        .find(|l| l.starts_with("| gunshot |"))
        .expect(&eval);
    // | label | events | detected | …
    assert_eq!(
        counts(eval_row, 2),
        (events, fit_detected),
        "{text}\n{eval}"
    );
}

#[test]
fn a_fit_without_its_parts_or_events_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_part(&data.join("train"), 1, 2);
    let out = train_cmd()
        .args(["audio-events", "fit", "--labels", "gunshot"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("validation"), "{err}");
    // Labels the training part never marks: refused, naming them and the folder.
    write_part(&data.join("validation"), 2, 2);
    let out = train_cmd()
        .args(["audio-events", "fit", "--labels", "screaming"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("run2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("gunshot") || err.contains("screaming"),
        "{err}"
    );
    assert!(
        !dir.path().join("run2").exists(),
        "nothing written on bad input"
    );
}
