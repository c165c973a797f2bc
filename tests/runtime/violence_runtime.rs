//! The surveillance profile end to end, as `vigil demo` runs it: a clip staged from held-out
//! real recordings, written to a Matroska file, read by one GStreamer pipeline with video and
//! audio, cut into snippets, extracted, scored by the shipped MAVD-edge on its sliding window,
//! and decided into violence alerts with start, end, modalities and evidence. A calm clip from
//! the same footage raises nothing. Profiles that cannot work are refused by name.

#![cfg(feature = "gst")]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use vigil::models::violence::demo::{self, DemoOptions, EVENT};
use vigil::{Alert, Profile};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn run_demo(dir: &Path, violent: bool) -> (demo::Demo, Vec<Alert>) {
    let alerts = dir.join("alerts.jsonl");
    let options = DemoOptions {
        violent,
        real_time: false,
        alerts: alerts.clone(),
    };
    let written = demo::prepare(&repo(), dir, &options)
        .expect("the recordings of ../shared/data/README.md (scripts/deps.sh installs them)");
    vigil::runtime::run(
        &written.profile,
        &AtomicBool::new(false),
        &AtomicBool::new(false),
    )
    .unwrap();
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    let alerts = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (written, alerts)
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[test]
fn a_staged_fight_raises_one_violence_event_with_its_modalities_and_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (written, alerts) = run_demo(dir.path(), true);
    assert_eq!(written.event, Some(EVENT));
    let opened: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.phase == vigil::alert::Phase::New)
        .collect();
    assert_eq!(opened.len(), 1, "{alerts:#?}");
    let new = opened[0];
    assert_eq!(new.label.as_str(), "violence");
    assert_eq!(new.model.as_str(), "mavd-edge");
    // Opened by a snippet that overlaps the fight (a snippet is 0.667 s).
    let start = seconds(new.start_pts_ns);
    assert!(
        start > EVENT.0 - 0.7 && start < EVENT.1,
        "opened at {start:.2} s, fight {EVENT:?}"
    );
    let end = alerts
        .iter()
        .find(|a| a.phase == vigil::alert::Phase::End && a.event == new.event)
        .expect("the event ends");
    // It ends after the fight, at the latest once the fight's snippets have left the model's
    // window (8 snippets, 5.33 s) and two more snippets scored below `off`.
    let end_s = seconds(end.pts_ns);
    let snippet = 16.0 / 24.0;
    assert!(
        end_s > EVENT.1 && end_s <= EVENT.1 + 10.0 * snippet + 0.01,
        "ended at {end_s:.2} s, fight {EVENT:?}"
    );
    let modalities = end.modalities.as_deref().expect("modalities named");
    assert!(!modalities.is_empty());
    assert!(
        modalities
            .split('+')
            .all(|m| ["video", "audio", "flow"].contains(&m)),
        "{modalities}"
    );
    // Evidence: keyframes and the audio from before the start to after the end.
    let folder = dir
        .path()
        .join("evidence")
        .join(end.evidence.as_deref().expect("evidence named"));
    let files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f == "clip.wav"), "{files:?}");
    assert!(
        files.iter().filter(|f| f.ends_with(".png")).count() >= 4,
        "{files:?}"
    );
}

#[test]
fn the_same_street_without_the_fight_raises_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (written, alerts) = run_demo(dir.path(), false);
    assert_eq!(written.event, None);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

fn profile_with(dir: &Path, stream: &str) -> Result<Vec<String>, String> {
    let path = dir.join("profile.toml");
    std::fs::write(
        &path,
        format!(
            "[box]\nname = \"t\"\n[alerts]\njournal = \"journal\"\n\
             sinks = [{{ kind = \"jsonl\", name = \"log\", path = \"-\" }}]\n\
             [[stream]]\nname = \"cam0\"\n{stream}"
        ),
    )
    .unwrap();
    let profile = Profile::load(&path).map_err(|err| err.to_string())?;
    vigil::runtime::check(&profile).map_err(|err| err.to_string())
}

#[test]
fn profiles_that_cannot_feed_mavd_edge_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = profile_with(
        dir.path(),
        "model = \"mavd-edge\"\nsource = { kind = \"synth\", duration_s = 1.0 }\n\
         [stream.violence]\nvideo_from = \"src.\"\naudio_from = \"src.\"\n",
    )
    .unwrap_err();
    assert!(err.contains("needs video and audio on one clock"), "{err}");

    let err = profile_with(
        dir.path(),
        "model = \"mavd-edge\"\nsource = { kind = \"gstreamer\", pipeline = \"videotestsrc name=src\" }\n",
    )
    .unwrap_err();
    assert!(err.contains("[stream.violence]"), "{err}");

    let err = profile_with(
        dir.path(),
        "model = \"yamnet\"\nsource = { kind = \"gstreamer\", pipeline = \"audiotestsrc\" }\n\
         [stream.violence]\nvideo_from = \"src.\"\naudio_from = \"src.\"\n",
    )
    .unwrap_err();
    assert!(err.contains("is for mavd_edge models"), "{err}");

    // A branch that starts from an element the fragment does not name.
    let err = profile_with(
        dir.path(),
        "model = \"mavd-edge\"\nsource = { kind = \"gstreamer\", pipeline = \"videotestsrc name=cam\" }\n\
         [stream.violence]\nvideo_from = \"cam.\"\naudio_from = \"mic.\"\n",
    )
    .unwrap_err();
    assert!(err.contains("mic"), "{err}");

    // A camera and a microphone in one pipeline check out.
    let report = profile_with(
        dir.path(),
        "model = \"mavd-edge\"\nsource = { kind = \"gstreamer\", pipeline = \"videotestsrc is-live=true name=cam audiotestsrc is-live=true name=mic\" }\n\
         [stream.violence]\nvideo_from = \"cam.\"\naudio_from = \"mic.\"\nfused = { on = 0.6, off = 0.3 }\n",
    )
    .unwrap();
    assert!(report[0].contains("audio+video"), "{report:?}");
}
