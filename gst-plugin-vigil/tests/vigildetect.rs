//! `vigildetect` in a gst_check harness and in `gst-launch-1.0`: generated audio with gunshots
//! goes in, buffers come out unchanged with YAMNet's scores as meta, and the alerts arrive on
//! the bus; bad settings and caps are refused with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use gst::prelude::*;
use vigil::capture::synth::{SynthConfig, SynthEvent, SynthEventKind, render};

const RATE: u32 = 16_000;
const AUDIO_CAPS: &str = "audio/x-raw,format=F32LE,layout=interleaved,channels=1,rate=16000";

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvigil::plugin_register_static().unwrap();
    });
}

/// A profile whose first stream listens for gunshots with YAMNet, as the demo does.
fn write_profile(dir: &Path) -> PathBuf {
    let path = dir.join("box.toml");
    std::fs::write(
        &path,
        r#"
[box]
name = "element"
[alerts]
journal = "journal"
sinks = [{ kind = "jsonl", name = "out", path = "-" }]
[[stream]]
name = "mic0"
model = "yamnet"
source = { kind = "synth", duration_s = 1.0 }
[stream.audio_events]
events = [{ label = "gunshot", classes = ["Gunshot, gunfire", "Explosion", "Burst, pop"], on = 0.25, off = 0.1 }]
"#,
    )
    .unwrap();
    path
}

fn gunshots() -> Vec<f32> {
    let config: SynthConfig = toml::from_str("duration_s = 6.0").unwrap();
    render(&SynthConfig {
        events: vec![SynthEvent {
            at_s: 2.0,
            kind: SynthEventKind::Gunshot,
        }],
        ..config
    })
}

fn buffer_of(samples: &[f32], first: usize) -> gst::Buffer {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    let buffer_ref = buffer.get_mut().unwrap();
    buffer_ref.set_pts(gst::ClockTime::from_nseconds(
        first as u64 * 1_000_000_000 / u64::from(RATE),
    ));
    buffer_ref.set_duration(gst::ClockTime::from_nseconds(
        samples.len() as u64 * 1_000_000_000 / u64::from(RATE),
    ));
    buffer
}

fn alerts_on(bus: &gst::Bus) -> Vec<gst::Structure> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Element]))
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .filter(|s| s.name() == "vigil-alert")
        .collect()
}

#[test]
fn scores_ride_on_buffers_and_alerts_on_the_bus() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let element = gst::ElementFactory::make("vigildetect")
        .property("profile", write_profile(dir.path()).to_str().unwrap())
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut harness = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    harness.set_src_caps_str(AUDIO_CAPS);

    let audio = gunshots();
    let block = RATE as usize / 10;
    let mut gunshot_scores = Vec::new();
    for (n, chunk) in audio.chunks(block).enumerate() {
        let input = buffer_of(chunk, n * block);
        harness.push(input).unwrap();
        let output = harness.pull().unwrap();
        // Passed through untouched.
        let map = output.map_readable().unwrap();
        let expected: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(map.as_slice(), &expected[..]);
        // 0.1 s buffers complete at most one 0.48 s hop each.
        if let Ok(meta) = gst::meta::CustomMeta::from_buffer(&output, "VigilScoreMeta") {
            let s = meta.structure();
            assert_eq!(s.get::<&str>("stream").unwrap(), "mic0");
            assert_eq!(s.get::<&str>("model").unwrap(), "yamnet");
            gunshot_scores.push((
                s.get::<u64>("pts").unwrap(),
                s.get::<f64>("gunshot").unwrap(),
            ));
        }
    }
    harness.push_event(gst::event::Eos::new());

    // One score per 0.48 s hop of the 0.96 s patches over 6 s.
    assert!(
        (10..=13).contains(&gunshot_scores.len()),
        "{gunshot_scores:?}"
    );
    let loud = |pts: u64| (1.9e9..=3.5e9).contains(&(pts as f64));
    let peak_at_shot = gunshot_scores
        .iter()
        .filter(|(pts, _)| loud(*pts))
        .map(|(_, s)| *s)
        .fold(0.0, f64::max);
    let peak_elsewhere = gunshot_scores
        .iter()
        .filter(|(pts, _)| !loud(*pts))
        .map(|(_, s)| *s)
        .fold(0.0, f64::max);
    assert!(
        peak_at_shot > 0.25 && peak_elsewhere < 0.1,
        "{gunshot_scores:?}"
    );

    let alerts = alerts_on(&bus);
    let phases: Vec<&str> = alerts
        .iter()
        .map(|a| a.get::<&str>("phase").unwrap())
        .collect();
    assert_eq!(phases.first(), Some(&"new"), "{alerts:?}");
    assert_eq!(phases.last(), Some(&"end"), "{alerts:?}");
    let new = &alerts[0];
    assert_eq!(new.get::<&str>("label").unwrap(), "gunshot");
    let start = new.get::<u64>("start-pts").unwrap() as f64 / 1e9;
    assert!((1.0..=3.0).contains(&start), "event starts at {start} s");
    let json: serde_json::Value = serde_json::from_str(new.get::<&str>("json").unwrap()).unwrap();
    assert_eq!(json["stream"], "mic0");
}

#[test]
fn bad_settings_and_caps_are_refused_with_the_reason() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let error_of = |element: &gst::Element| {
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        assert!(element.set_state(gst::State::Paused).is_err());
        let message = bus.pop_filtered(&[gst::MessageType::Error]).unwrap();
        element.set_state(gst::State::Null).unwrap();
        let gst::MessageView::Error(err) = message.view() else {
            unreachable!()
        };
        err.error().to_string()
    };

    let unset = gst::ElementFactory::make("vigildetect").build().unwrap();
    let err = error_of(&unset);
    assert!(err.contains("property profile is not set"), "{err}");

    let missing = gst::ElementFactory::make("vigildetect")
        .property("profile", "/nonexistent/box.toml")
        .build()
        .unwrap();
    assert!(error_of(&missing).contains("/nonexistent/box.toml"));

    let profile = write_profile(dir.path());
    let wrong_model = gst::ElementFactory::make("vigildetect")
        .property("profile", profile.to_str().unwrap())
        .property("model", "no-such-model")
        .build()
        .unwrap();
    assert!(error_of(&wrong_model).contains("no-such-model"));

    // Audio at another rate does not negotiate: resample before the element.
    let element = gst::ElementFactory::make("vigildetect")
        .property("profile", profile.to_str().unwrap())
        .build()
        .unwrap();
    let mut harness = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    harness.set_src_caps_str(&AUDIO_CAPS.replace("16000", "44100"));
    let pushed = harness.push(buffer_of(&[0.0; 441], 0));
    assert_eq!(pushed, Err(gst::FlowError::NotNegotiated));
}

/// The shared library next to this test binary, where `GST_PLUGIN_PATH` finds it.
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .into_iter()
        .find(|d| d.join("libgstvigil.so").exists())
        .expect("libgstvigil.so not built next to the tests")
        .to_path_buf()
}

/// The README's example: a file decoded, converted and resampled by GStreamer, then scored.
#[test]
fn runs_in_gst_launch() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path());
    let wav = dir.path().join("shots.wav");
    vigil::io::wav::write_mono_pcm16(&wav, RATE, &gunshots()).unwrap();
    let output = Command::new("gst-launch-1.0")
        .arg("-m")
        .args([
            "filesrc",
            &format!("location={}", wav.display()),
            "!",
            "decodebin",
        ])
        .args([
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
            "vigildetect",
        ])
        .arg(format!("profile={}", profile.display()))
        .args(["!", "fakesink"])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", dir.path().join("registry.bin"))
        .output()
        .expect("gst-launch-1.0 is not installed (Debian package gstreamer1.0-tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("vigil-alert"), "{stdout}");
    assert!(stdout.contains("phase=(string)new"), "{stdout}");
    assert!(stdout.contains("phase=(string)end"), "{stdout}");
}

/// Video: RGB frames at the profile's capture size through ISSTAD-edge; each frame gets its
/// image score, and padded RGB rows (a width not a multiple of 4) are read at their stride.
#[test]
fn video_frames_get_their_defect_score() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("line.toml");
    let (width, height) = (161, 120);
    std::fs::write(
        &profile,
        format!(
            r#"
[box]
name = "line"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "out", path = "-" }}]
[[stream]]
name = "line1"
model = "isstad-edge-brick"
source = {{ kind = "v4l2", device = "/dev/video0", width = {width}, height = {height}, fps = 30 }}
[stream.industrial]
label = "defect"
capture_width = {width}
capture_height = {height}
"#
        ),
    )
    .unwrap();
    let element = gst::ElementFactory::make("vigildetect")
        .property("profile", profile.to_str().unwrap())
        .build()
        .unwrap();
    let mut harness = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    harness.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={width},height={height},framerate=10/1"
    ));
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .build()
        .unwrap();
    let stride = info.stride()[0] as usize;
    assert!(stride > width as usize * 3, "rows are padded");
    let mut scores = Vec::new();
    for n in 0..3u64 {
        // The same brick-coloured frame each time, with different bytes in the row padding.
        let mut data = vec![[0x00u8, 0xEE, 0x55][n as usize]; info.size()];
        for y in 0..height as usize {
            for x in 0..width as usize * 3 {
                data[y * stride + x] =
                    [150u8, 80, 60][x % 3].wrapping_add(((x * 7 + y * 13) % 9) as u8);
            }
        }
        let mut buffer = gst::Buffer::from_mut_slice(data);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(100 * n));
        harness.push(buffer).unwrap();
        let output = harness.pull().unwrap();
        let meta = gst::meta::CustomMeta::from_buffer(&output, "VigilScoreMeta").unwrap();
        assert_eq!(meta.structure().get::<u64>("pts").unwrap(), 100_000_000 * n);
        scores.push(meta.structure().get::<f64>("defect").unwrap());
    }
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
    // The same pixels score the same whatever the padding holds: it was not read as pixels.
    assert!(
        scores.iter().all(|s| (s - scores[0]).abs() < 1e-6),
        "{scores:?}"
    );
}
