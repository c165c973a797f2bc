//! Evidence through the runtime: a gunshot in generated audio gives alerts that name their
//! evidence folder, and the folder holds the clip from before the event to after its end.

use crate::common;

use vigil::profile::Profile;
use vigil::runtime::Runtime;

#[test]
fn alerts_name_a_clip_that_spans_their_event() {
    let dir = tempfile::tempdir().unwrap();
    let alerts_file = dir.path().join("alerts.jsonl");
    let text = format!(
        r#"
[box]
name = "t"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "file", path = "{}" }}]
[[stream]]
name = "mic"
model = "yamnet"
source = {{ kind = "synth", duration_s = 6.0, realtime = true, events = [{{ at_s = 2.5, kind = "gunshot" }}] }}
[stream.audio_events]
events = [{{ label = "gunshot", classes = ["Gunshot, gunfire", "Explosion", "Burst, pop"], on = 0.25, off = 0.1 }}]
[stream.evidence]
dir = "evidence"
pre_s = 1.5
post_s = 1.0
"#,
        alerts_file.display()
    );
    let profile = Profile::parse(&text, &dir.path().join("t.toml")).unwrap();
    Runtime::start(&profile).unwrap().wait().unwrap();

    let alerts = common::read_alerts(&alerts_file);
    let new = alerts.iter().find(|a| a["phase"] == "new").unwrap();
    let end = alerts.iter().find(|a| a["phase"] == "end").unwrap();
    let folder = new["evidence"].as_str().unwrap();
    assert_eq!(folder, format!("mic-{}", new["event"]));
    assert!(
        alerts.iter().all(|a| a["evidence"] == folder),
        "{alerts:#?}"
    );

    let evidence = dir.path().join("evidence").join(folder);
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evidence.join("event.json")).unwrap())
            .unwrap();
    let ns = |v: &serde_json::Value| v.as_u64().unwrap() as f64 / 1e9;
    let (start, stop) = (ns(&new["start_pts_ns"]), ns(&end["pts_ns"]));
    let (first, last) = (ns(&event["first_pts_ns"]), ns(&event["last_pts_ns"]));
    assert!(
        first <= start - 1.5 + 0.1 && first >= start - 1.5 - 0.2,
        "{first} vs start {start}"
    );
    assert!(
        last >= stop + 1.0 - 0.1 || last >= 5.9,
        "{last} vs end {stop}"
    );
    let clip = std::fs::read(evidence.join("clip.wav")).unwrap();
    let seconds = (clip.len() - 44) as f64 / 2.0 / 16_000.0;
    assert!(
        (seconds - (last - first)).abs() < 0.05,
        "{seconds} s of {first}..{last}"
    );
    assert_loud_inside(&clip, start - first);
}

/// The gunshot is in the clip where the event says: the loudest part is after its start.
fn assert_loud_inside(wav: &[u8], event_offset_s: f64) {
    let samples: Vec<f32> = wav[44..]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let loudest = samples
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map(|(i, _)| i as f64 / 16_000.0)
        .unwrap();
    assert!(
        loudest >= event_offset_s - 1.0,
        "loudest at {loudest} s, event at {event_offset_s} s"
    );
}
