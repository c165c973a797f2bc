//! Stopping a running profile (what SIGINT/SIGTERM do) ends open events and drains every
//! alert to the sinks before returning.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil::profile::Profile;
use vigil::runtime::Runtime;

#[test]
fn stop_ends_open_events_and_delivers_them() {
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
# A live microphone for a minute, with a gunshot early on and no end in sight.
source = {{ kind = "synth", duration_s = 60.0, realtime = true, events = [{{ at_s = 0.5, kind = "gunshot" }}] }}
[stream.audio_events]
# off = 0 keeps the event open until the stream ends.
events = [{{ label = "gunshot", classes = ["Gunshot, gunfire", "Explosion", "Burst, pop"], on = 0.25, off = 0.0 }}]
"#,
        alerts_file.display()
    );
    let profile = Profile::parse(&text, &dir.path().join("t.toml")).unwrap();
    let runtime = Runtime::start(&profile).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        stopper.store(true, Ordering::SeqCst);
        Instant::now()
    });
    runtime.run_until(&stop).unwrap();
    let stopped_at = timer.join().unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        stopped_at.elapsed()
    );

    let alerts = common::read_alerts(&alerts_file);
    let phases: Vec<&str> = alerts
        .iter()
        .map(|a| a["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases.first(), Some(&"new"), "{alerts:#?}");
    assert_eq!(
        phases.last(),
        Some(&"end"),
        "the open event is ended on stop: {alerts:#?}"
    );
}

#[test]
fn two_streams_run_side_by_side_on_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let alerts_file = dir.path().join("alerts.jsonl");
    let stream = |name: &str, at: f32| {
        format!(
            r#"
[[stream]]
name = "{name}"
model = "yamnet"
# Faster than real time: queues deep enough that nothing is dropped.
queue_depth = 1000
source = {{ kind = "synth", duration_s = 4.0, realtime = false, seed = 3, events = [{{ at_s = {at}, kind = "gunshot" }}] }}
[stream.audio_events]
events = [{{ label = "gunshot", classes = ["Gunshot, gunfire", "Explosion", "Burst, pop"], on = 0.25, off = 0.1 }}]
"#
        )
    };
    let text = format!(
        "[box]\nname = \"t\"\n[alerts]\njournal = \"journal\"\nsinks = [{{ kind = \"jsonl\", name = \"file\", path = \"{}\" }}]\n{}{}",
        alerts_file.display(),
        stream("left", 1.0),
        stream("right", 2.0)
    );
    let profile = Profile::parse(&text, &dir.path().join("t.toml")).unwrap();
    Runtime::start(&profile).unwrap().wait().unwrap();
    let alerts = common::read_alerts(&alerts_file);
    for name in ["left", "right"] {
        let mine: Vec<_> = alerts.iter().filter(|a| a["stream"] == name).collect();
        assert!(
            mine.iter().any(|a| a["phase"] == "new"),
            "{name}: {alerts:#?}"
        );
        assert!(
            mine.iter().any(|a| a["phase"] == "end"),
            "{name}: {alerts:#?}"
        );
    }
}
