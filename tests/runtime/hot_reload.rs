//! Hot reload of a running `vigil run`: a changed profile is picked up from the file, a bad
//! profile or a damaged model is refused while the old one keeps running, SIGHUP reloads, and
//! no alert is lost or repeated across all of it.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil::profile::Profile;
use vigil::runtime::Runtime;

/// A manifest with the shipped YAMNet entry whose files are copied to `dir/cache/yamnet`, so
/// that a test can damage them (tract refuses external data reached through a link).
fn private_manifest(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let text = std::fs::read_to_string(shipped.join("manifest.toml")).unwrap();
    let start = text.find("[[model]]\nname = \"yamnet\"").unwrap();
    let end = text[start + 1..]
        .find("[[model]]")
        .map_or(text.len(), |n| start + 1 + n);
    std::fs::create_dir_all(dir.join("cache/yamnet")).unwrap();
    for file in ["model.onnx", "model.data", "yamnet_class_map.csv"] {
        std::fs::copy(
            shipped.join("cache/yamnet").join(file),
            dir.join("cache/yamnet").join(file),
        )
        .unwrap();
    }
    let manifest = dir.join("manifest.toml");
    std::fs::write(&manifest, &text[start..end]).unwrap();
    manifest
}

/// A box with two microphones (generated audio, a gunshot every 2 s, in real time) and one or
/// two JSON-lines sinks. `on` is mic1's opening threshold.
fn profile_text(on: f32, second_sink: bool) -> String {
    let shots: Vec<String> = (0..30)
        .map(|n| format!("{{ at_s = {}.5, kind = \"gunshot\" }}", 2 * n))
        .collect();
    let stream = |name: &str, on: f32, seed: u32| {
        format!(
            r#"
[[stream]]
name = "{name}"
model = "yamnet"
source = {{ kind = "synth", duration_s = 60.0, realtime = true, seed = {seed}, events = [{shots}] }}
[stream.audio_events]
events = [{{ label = "gunshot", classes = ["Gunshot, gunfire", "Explosion", "Burst, pop"], on = {on}, off = 0.1 }}]
"#,
            shots = shots.join(", ")
        )
    };
    let sinks = if second_sink {
        r#"[{ kind = "jsonl", name = "file", path = "alerts.jsonl" }, { kind = "jsonl", name = "audit", path = "audit.jsonl" }]"#
    } else {
        r#"[{ kind = "jsonl", name = "file", path = "alerts.jsonl" }]"#
    };
    format!(
        "[box]\nname = \"box1\"\nmanifest = \"manifest.toml\"\n[alerts]\njournal = \"journal\"\nsinks = {sinks}\n{}{}",
        stream("mic0", 0.25, 1),
        stream("mic1", on, 2)
    )
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// False once the process logged its end (an error, or its stop).
fn vigil_running(log: &Path) -> bool {
    !log_of(log).contains("Error:")
}

fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces a file the way editors and deployment tools do: write aside, rename over.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

#[test]
fn a_running_box_reloads_refuses_bad_input_and_loses_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    private_manifest(dir.path());
    let profile = dir.path().join("box.toml");
    std::fs::write(&profile, profile_text(0.25, false)).unwrap();
    let log = dir.path().join("vigil.log");
    let mut vigil = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("run")
        .arg(&profile)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let alerts = || common::read_alerts(&dir.path().join("alerts.jsonl"));
    let count_in_log = |needle: &str| log_of(&log).matches(needle).count();
    let streams_alerting_after = |n: usize| {
        alerts()[n.min(alerts().len())..]
            .iter()
            .map(|a| a["stream"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    wait_for("alerts from both streams", Duration::from_secs(60), || {
        assert!(vigil_running(&log), "{}", log_of(&log));
        streams_alerting_after(0).len() == 2
    });

    // 1. Only mic1's threshold changes: mic0 keeps running untouched.
    replace(&profile, &profile_text(0.3, false));
    wait_for("the reload", Duration::from_secs(20), || {
        count_in_log("reloaded") == 1
    });
    assert!(
        log_of(&log).contains("kept mic0; restarted mic1; started none; stopped none"),
        "{}",
        log_of(&log)
    );

    // 2. A profile with a typo is refused, naming the key; the running profile stays.
    replace(
        &profile,
        &profile_text(0.3, false)
            .replace("journal = \"journal\"", "journal = \"journal\"\nqueu = 8"),
    );
    wait_for("the refusal", Duration::from_secs(20), || {
        count_in_log("refused") == 1
    });
    assert!(log_of(&log).contains("queu"), "{}", log_of(&log));

    // 3. A damaged model file is refused with the digest check; the old model keeps running.
    std::fs::write(&profile, profile_text(0.3, false)).unwrap();
    let model = dir.path().join("cache/yamnet/model.onnx");
    let good_model = std::fs::read(&model).unwrap();
    let mut damaged = good_model.clone();
    damaged.truncate(good_model.len() / 2);
    std::fs::write(&model, &damaged).unwrap();
    wait_for("the model refusal", Duration::from_secs(20), || {
        count_in_log("refused") == 2
    });
    assert!(log_of(&log).contains("sha256"), "{}", log_of(&log));
    let seen = alerts().len();
    wait_for("alerts after the refusals", Duration::from_secs(30), || {
        streams_alerting_after(seen).len() == 2
    });
    std::fs::write(&model, &good_model).unwrap();
    // The restored model restarts both streams; let that reload happen first.
    std::thread::sleep(Duration::from_millis(2500));

    // 4. SIGHUP with a second sink: everything restarts around the same journal. (Should the
    // file watch see the new profile first, the SIGHUP reload finds nothing left to change.)
    std::fs::write(&profile, profile_text(0.3, true)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &vigil.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("the full restart", Duration::from_secs(20), || {
        let log = log_of(&log);
        log.contains("(SIGHUP)")
            && log.contains("box, alerts or metrics changed: restarted everything")
    });
    let seen = alerts().len();
    wait_for("alerts after the restart", Duration::from_secs(30), || {
        streams_alerting_after(seen).len() == 2
    });

    // SIGTERM: a clean stop.
    let term = Command::new("kill")
        .args(["-TERM", &vigil.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = vigil.wait().unwrap();
    assert!(status.success(), "{}", log_of(&log));

    // The first sink got every journaled alert once: ids consecutive, none repeated.
    let ids: Vec<u64> = alerts().iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "ids not consecutive: {ids:?}"
    );
    // Every event opened once and ended at most once; events restarted by a reload ended.
    let mut phases: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for alert in alerts() {
        phases
            .entry((
                alert["stream"].as_str().unwrap().into(),
                alert["event"].as_u64().unwrap(),
            ))
            .or_default()
            .push(alert["phase"].as_str().unwrap().into());
    }
    for (event, phases) in &phases {
        assert_eq!(phases.first().map(String::as_str), Some("new"), "{event:?}");
        assert_eq!(
            phases.iter().filter(|p| *p == "new").count(),
            1,
            "{event:?}"
        );
        assert!(
            phases.iter().filter(|p| *p == "end").count() <= 1,
            "{event:?}"
        );
    }
    // The sink added by the reload got what the journal still held, then everything new.
    let audit = common::read_alerts(&dir.path().join("audit.jsonl"));
    assert!(!audit.is_empty());
    assert_eq!(audit.last().unwrap()["id"], *ids.last().unwrap());
    println!(
        "hot reload: {} alerts, {} events, ids {}..={}, audit sink got {}",
        ids.len(),
        phases.len(),
        ids[0],
        ids.last().unwrap(),
        audit.len()
    );
}

#[test]
fn reload_reports_what_it_kept_started_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    private_manifest(dir.path());
    let path = dir.path().join("box.toml");
    let parse = |text: &str| Profile::parse(text, &path).unwrap();
    let mut runtime = Runtime::start(&parse(&profile_text(0.25, false))).unwrap();

    // mic1 removed, mic2 added; mic0 unchanged.
    let swapped = profile_text(0.25, false).replace("name = \"mic1\"", "name = \"mic2\"");
    let report = runtime.reload(parse(&swapped)).unwrap();
    assert_eq!(report.kept, ["mic0"]);
    assert_eq!(report.started, ["mic2"]);
    assert_eq!(report.stopped, ["mic1"]);
    assert!(report.restarted.is_empty() && !report.restarted_all);

    // An unknown model is refused before anything stops.
    let unknown = swapped.replacen("model = \"yamnet\"", "model = \"yamnet-v9\"", 1);
    let err = runtime.reload(parse(&unknown)).unwrap_err().to_string();
    assert!(err.contains("yamnet-v9"), "{err}");
    assert!(!runtime.is_broken());
    let names: Vec<&str> = runtime
        .profile()
        .streams
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["mic0", "mic2"]);

    // The same profile again changes nothing.
    let report = runtime.reload(parse(&swapped)).unwrap();
    assert_eq!(report.kept, ["mic0", "mic2"]);
    runtime.stop().unwrap();
}
