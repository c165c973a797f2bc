//! Stopping a running profile (what SIGINT/SIGTERM do) ends open events and drains every
//! alert to the sinks before returning.

mod common;

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
