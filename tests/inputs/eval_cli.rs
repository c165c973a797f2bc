//! `vigil eval --scores FILE.csv` prints the metrics of any score file, and names what is wrong
//! with a bad one.

use std::process::Command;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

#[test]
fn a_score_file_is_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.csv");
    // Positives 0.9, 0.8, 0.3; negatives 0.7, 0.2: 5 of the 6 pairs are ordered right.
    std::fs::write(&path, "label,score\n1,0.9\n1,0.8\n0,0.7\n1,0.3\n0,0.2\n").unwrap();
    let out = vigil()
        .args(["eval", "--scores"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0.8333"), "ROC AUC 5/6 expected in: {text}");
}

#[test]
fn a_bad_score_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.csv");
    std::fs::write(&path, "score,label\n0.9,1\nhigh,0\n").unwrap();
    let out = vigil()
        .args(["eval", "--scores"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("scores.csv"),
        "{err}"
    );
}

/// An alert record as the `jsonl` sink writes it.
fn alert_line(phase: &str, label: &str, pts_s: f64) -> String {
    let pts = (pts_s * 1e9) as u64;
    format!(
        r#"{{"id":1,"event":1,"phase":"{phase}","stream":"mic","model":"yamnet","label":"{label}","score":0.9,"peak":0.9,"threshold":0.5,"start_pts_ns":{pts},"pts_ns":{pts},"captured_at_ns":0,"decided_at_ns":0,"regions":[]}}"#
    )
}

#[test]
fn a_labelled_recording_is_scored_event_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.csv");
    std::fs::write(
        &events,
        "start,end,label\n10,10.4,gunshot\n40,41.5,screaming\n70,70.3,gunshot\n",
    )
    .unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let lines = [
        alert_line("new", "gunshot", 10.9),
        alert_line("end", "gunshot", 12.0),
        alert_line("new", "explosion", 70.5),
        alert_line("new", "shout", 200.0),
    ];
    std::fs::write(&alerts, lines.join("\n")).unwrap();
    let json = dir.path().join("report.json");
    let out = vigil()
        .args(["eval", "--duration", "600", "--events"])
        .arg(&events)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // One of two shots caught 0.9 s late, the second called an explosion, the scream missed,
    // and one shout on nothing.
    assert!(
        text.contains("| gunshot | 2 | 1 (50.00 %) | 0.90 s"),
        "{text}"
    );
    assert!(
        text.contains("| explosion | 0 | 0 (–) | – | – | 0 | 1 | 0 |"),
        "{text}"
    );
    assert!(text.contains("| screaming | 1 | 0 (0.00 %)"), "{text}");
    assert!(text.contains("false alarms in all: 1"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["labels"].as_array().unwrap().len(), 4);
}

#[test]
fn a_bad_event_list_or_alerts_file_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.csv");
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts, alert_line("new", "gunshot", 1.0)).unwrap();
    let run = |events_text: &str, alerts_text: &str| {
        std::fs::write(&events, events_text).unwrap();
        std::fs::write(&alerts, alerts_text).unwrap();
        let out = vigil()
            .args(["eval", "--duration", "60", "--events"])
            .arg(&events)
            .arg("--alerts")
            .arg(&alerts)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let good_alert = alert_line("new", "gunshot", 1.0);
    let err = run("start,end,label\n1,3,gunshot\n2,4,shout\n", &good_alert);
    assert!(
        err.contains("events.csv: line 3") && err.contains("overlaps line 2"),
        "{err}"
    );
    let err = run("start,end,label\n5,4,gunshot\n", &good_alert);
    assert!(
        err.contains("line 2: the event ends at 4 s, not after its start"),
        "{err}"
    );
    let err = run("start,end,label\n1,2,fireworks\n", &good_alert);
    assert!(err.contains("unknown label \"fireworks\""), "{err}");
    let err = run("start,end,label\n50,70,gunshot\n", &good_alert);
    assert!(err.contains("past the recording's end at 60 s"), "{err}");
    let other = good_alert.replace("\"stream\":\"mic\"", "\"stream\":\"cam\"");
    let err = run(
        "start,end,label\n1,2,gunshot\n",
        &format!("{good_alert}\n{other}"),
    );
    assert!(
        err.contains("alerts.jsonl: line 2: an alert from stream \"cam\""),
        "{err}"
    );
}

/// The demo's generated recording (two gunshot-like blasts) written as a WAV file, with its
/// events marked, scored directly through the demo profile's microphone stream.
#[test]
fn a_recording_is_scored_through_a_profile_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = vigil::capture::synth::SynthConfig {
        rate: 16_000,
        duration_s: 12.0,
        events: [3.0, 8.0]
            .map(|at_s| vigil::capture::synth::SynthEvent {
                at_s,
                kind: vigil::capture::synth::SynthEventKind::Gunshot,
            })
            .to_vec(),
        realtime: false,
        block_ms: 100,
        seed: 0,
    };
    let wav = dir.path().join("site.wav");
    vigil::io::wav::write_mono_pcm16(&wav, 16_000, &vigil::capture::synth::render(&config))
        .unwrap();
    let events = dir.path().join("site.events.csv");
    std::fs::write(
        &events,
        "start,end,label\n3.0,3.6,gunshot\n8.0,8.6,gunshot\n",
    )
    .unwrap();
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/targets/demo.toml");
    let alerts = dir.path().join("alerts.jsonl");
    let out = vigil()
        .args([
            "eval",
            "--profile",
            profile,
            "--stream",
            "mic0",
            "--recording",
        ])
        .arg(&wav)
        .arg("--events")
        .arg(&events)
        .arg("--alerts-out")
        .arg(&alerts)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("| gunshot | 2 | 2 (100.00 %)"), "{text}");
    assert!(text.contains("false alarms in all: 0"), "{text}");
    let written = std::fs::read_to_string(&alerts).unwrap();
    assert!(written.lines().any(|l| l.contains("\"phase\":\"new\"")));

    // The same file as a one-recording data set; a stream of another rate, a video stream
    // and a WAV without its event list are refused by name.
    let out = vigil()
        .args([
            "eval",
            "--profile",
            profile,
            "--stream",
            "mic0",
            "--dataset",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eight_k = dir.path().join("narrow.wav");
    vigil::io::wav::write_mono_pcm16(&eight_k, 8_000, &[0.0; 8000]).unwrap();
    let out = vigil()
        .args([
            "eval",
            "--profile",
            profile,
            "--stream",
            "mic0",
            "--recording",
        ])
        .arg(&eight_k)
        .arg("--events")
        .arg(&events)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("narrow.wav") && err.contains("8000 Hz"),
        "{err}"
    );
    let out = vigil()
        .args(["eval", "--profile", profile, "--dataset"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("narrow.events.csv is missing"), "{err}");
}

/// `--by COLUMN` breaks detections down by another column of the event list; a list without
/// that column is refused naming it.
#[test]
fn detections_are_broken_down_by_an_event_list_column() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.csv");
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(
        &events,
        "start,end,label,snr_db\n10,11,gunshot,0\n20,21,gunshot,12\n30,31,gunshot,12\n",
    )
    .unwrap();
    std::fs::write(
        &alerts,
        [
            alert_line("new", "gunshot", 20.5),
            alert_line("new", "gunshot", 30.2),
        ]
        .join("\n"),
    )
    .unwrap();
    let run = |column: &str| {
        vigil()
            .args(["eval", "--duration", "60", "--by", column, "--events"])
            .arg(&events)
            .arg("--alerts")
            .arg(&alerts)
            .output()
            .unwrap()
    };
    let out = run("snr_db");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("| gunshot | 0 | 1 | 0 (0.0 %) |"), "{text}");
    assert!(
        text.contains("| gunshot | 12 | 2 | 2 (100.0 %) |"),
        "{text}"
    );
    let out = run("place");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no `place` column"), "{err}");
}

/// Detected events and false alarms of the report row of `label`.
fn detected_of(report: &str, label: &str) -> usize {
    let row = report
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no {label} row: {report}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    cells[3].split_whitespace().next().unwrap().parse().unwrap()
}

/// A violence stream scores a recording under footage (its video and sound on one clock), and
/// several streams' alerts pool into what the box raised, counted as one label with `--as`.
#[test]
fn a_violence_stream_scores_a_recording_under_footage_and_streams_pool() {
    let footage = "/usr/share/doc/opencv-doc/examples/data/tree.avi";
    assert!(
        std::path::Path::new(footage).exists(),
        "{footage} is absent: the test command installs opencv-doc (scripts/deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = vigil::capture::synth::SynthConfig {
        rate: 16_000,
        duration_s: 12.0,
        events: [3.0, 8.0]
            .map(|at_s| vigil::capture::synth::SynthEvent {
                at_s,
                kind: vigil::capture::synth::SynthEventKind::Gunshot,
            })
            .to_vec(),
        realtime: false,
        block_ms: 100,
        seed: 0,
    };
    let wav = dir.path().join("scene.wav");
    vigil::io::wav::write_mono_pcm16(&wav, 16_000, &vigil::capture::synth::render(&config))
        .unwrap();
    let events = dir.path().join("scene.events.csv");
    std::fs::write(
        &events,
        "start,end,label\n3.0,3.6,gunshot\n8.0,8.6,gunshot\n",
    )
    .unwrap();
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/targets/surveillance-box.toml");
    let scores = dir.path().join("scores.csv");
    let run = |streams: &[&str], extra: &[&str]| {
        let mut command = vigil();
        command.args(["eval", "--profile", profile, "--as", "violence"]);
        for stream in streams {
            command.args(["--stream", stream]);
        }
        command
            .args(["--footage", footage])
            .args(extra)
            .arg("--recording")
            .arg(&wav)
            .arg("--events")
            .arg(&events)
            .arg("--scores-out")
            .arg(&scores)
            .output()
            .unwrap()
    };
    let mut detected = Vec::new();
    for streams in [&["cam0"][..], &["mic0"], &["cam0", "mic0"]] {
        let out = run(streams, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{streams:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        detected.push(detected_of(&text, "violence"));
        let written = std::fs::read_to_string(&scores).unwrap();
        for stream in streams {
            assert!(written.contains(&format!(",{stream},")), "{written}");
        }
        if streams.contains(&"cam0") {
            // The fused score and each branch's, per snippet.
            for head in ["violence", "video", "audio", "flow"] {
                assert!(
                    written
                        .lines()
                        .any(|l| l.contains(",cam0,") && l.contains(&format!(",{head},"))),
                    "{head}: {written}"
                );
            }
        }
    }
    // Pooled, an event is caught when either stream caught it.
    assert!(
        detected[2] >= detected[0].max(detected[1]) && detected[2] <= 2,
        "{detected:?}"
    );

    // A violence stream without footage, footage cut past its end, and --alerts from two
    // streams are refused by name.
    let out = vigil()
        .args([
            "eval",
            "--profile",
            profile,
            "--stream",
            "cam0",
            "--recording",
        ])
        .arg(&wav)
        .arg("--events")
        .arg(&events)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--footage"), "{err}");
    let out = run(&["cam0"], &["--footage-from", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tree.avi"), "{err}");
    let out = vigil()
        .args([
            "eval",
            "--duration",
            "12",
            "--stream",
            "cam0",
            "--stream",
            "mic0",
        ])
        .arg("--events")
        .arg(&events)
        .arg("--alerts")
        .arg(&events)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("one stream"), "{err}");
}
