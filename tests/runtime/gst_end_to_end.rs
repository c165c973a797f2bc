//! A real GStreamer pipeline from a file to alerts: a WAV at 48 kHz with gunshot-like blasts
//! goes through GStreamer (parse, resample to 16 kHz mono f32), the Rust log-mel front end,
//! YAMNet int8 on tract, hysteresis, the journal and a JSON-lines sink.

#![cfg(feature = "gst")]

use crate::common;

use vigil::capture::synth::{SynthConfig, SynthEvent, SynthEventKind, render};
use vigil::profile::Profile;
use vigil::runtime::Runtime;

#[test]
fn gunshots_in_a_wav_file_raise_gunshot_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("street.wav");
    let clip = render(&SynthConfig {
        rate: 48_000,
        duration_s: 10.0,
        events: vec![
            SynthEvent {
                at_s: 2.0,
                kind: SynthEventKind::Gunshot,
            },
            SynthEvent {
                at_s: 7.0,
                kind: SynthEventKind::Gunshot,
            },
        ],
        realtime: false,
        block_ms: 100,
        seed: 7,
    });
    common::write_wav(&wav, 48_000, &clip);
    let alerts_file = dir.path().join("alerts.jsonl");
    let profile_text = format!(
        r#"
[box]
name = "test"
[metrics]
listen = "127.0.0.1:0"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "file", path = "{}" }}]
[[stream]]
name = "mic0"
model = "yamnet"
queue_depth = 1000
source = {{ kind = "gstreamer", pipeline = "filesrc location={} ! wavparse", sync = false }}
[stream.audio_events]
events = [
    {{ label = "gunshot", classes = ["Gunshot, gunfire", "Machine gun", "Fusillade", "Artillery fire"], on = 0.25, off = 0.1 }},
    {{ label = "explosion", classes = ["Explosion", "Burst, pop", "Boom"], on = 0.25, off = 0.1 }},
    {{ label = "screaming", classes = ["Screaming"], on = 0.25, off = 0.1 }},
    {{ label = "shout", classes = ["Shout", "Yell"], on = 0.25, off = 0.1 }},
]
"#,
        alerts_file.display(),
        wav.display()
    );
    let profile = Profile::parse(&profile_text, &dir.path().join("test.toml")).unwrap();
    let runtime = Runtime::start(&profile).unwrap();
    let metrics = runtime.metrics().clone();
    let scraped = scrape(runtime.metrics_addr().expect("metrics endpoint"));
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(
        scraped.contains("# TYPE vigil_frames_in_total counter"),
        "{scraped}"
    );
    runtime.wait().unwrap();

    let alerts = common::read_alerts(&alerts_file);
    let gunshot: Vec<_> = alerts.iter().filter(|a| a["label"] == "gunshot").collect();
    let opened: Vec<f64> = gunshot
        .iter()
        .filter(|a| a["phase"] == "new")
        .map(|a| a["start_pts_ns"].as_f64().unwrap() / 1e9)
        .collect();
    assert_eq!(
        opened.len(),
        2,
        "expected two gunshot events, got {alerts:#?}"
    );
    // Each event opens on a patch (0.96 s, hop 0.48 s) that contains the blast.
    assert!(
        (1.0..=2.1).contains(&opened[0]),
        "first gunshot opened at {} s",
        opened[0]
    );
    assert!(
        (6.0..=7.1).contains(&opened[1]),
        "second gunshot opened at {} s",
        opened[1]
    );
    let ended = gunshot.iter().filter(|a| a["phase"] == "end").count();
    assert_eq!(ended, 2, "every event ends: {alerts:#?}");
    // Nothing but the planted events: no label fires on the speech-like background alone.
    let events: std::collections::BTreeSet<_> = alerts
        .iter()
        .filter(|a| a["phase"] == "new")
        .map(|a| a["label"].as_str().unwrap().to_string())
        .collect();
    assert!(
        events.iter().all(|l| l == "gunshot" || l == "explosion"),
        "unexpected labels {events:?}"
    );
    // Ids are unique and increasing: the journal numbered them.
    let ids: Vec<u64> = alerts.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let text = metrics.render();
    assert!(
        text.contains("vigil_frames_in_total{stream=\"mic0\"}"),
        "{text}"
    );
}

fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
