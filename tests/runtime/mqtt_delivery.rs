//! Alerts over MQTT against a real Mosquitto broker: nothing is lost when the broker goes away
//! for a while or when vigil is killed, every alert arrives in order per stream, the broker
//! announces a dead box through the Last Will, and TLS with a password works.
//!
//! Each test prints what was sent, received and duplicated (run with `--nocapture`).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mosquitto::{Mosquitto, Subscriber};
use vigil::alert::{Alert, Name, Phase};
use vigil::metrics::Metrics;
use vigil::sinks::mqtt::MqttTls;
use vigil::sinks::{AlertBus, MqttSettings, MqttSink, Sink};

fn mqtt_settings(text: &str) -> MqttSettings {
    toml::from_str(text).unwrap()
}

/// Alert number `n` of stream `stream`: `event` carries the sending order.
fn numbered(stream: &str, n: u64) -> Alert {
    let mut alert = common::alert(n);
    alert.stream = Name::try_from(stream).unwrap();
    alert.phase = [Phase::New, Phase::Update, Phase::End][n as usize % 3];
    alert
}

/// Per stream, the order in which ids first arrived, and how many arrivals were repeats.
fn first_arrivals(events: &[serde_json::Value]) -> (BTreeMap<String, Vec<u64>>, usize) {
    let mut seen = BTreeSet::new();
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut repeats = 0;
    for event in events {
        let id = event["alert"]["id"].as_u64().unwrap();
        if seen.insert(id) {
            let stream = event["alert"]["stream"].as_str().unwrap().to_string();
            per_stream.entry(stream).or_default().push(id);
        } else {
            repeats += 1;
        }
    }
    (per_stream, repeats)
}

fn is_increasing(ids: &[u64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn a_broker_outage_loses_nothing_and_keeps_each_stream_in_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("broker")).unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "allow_anonymous true");
    let subscriber = Subscriber::connect(broker.port, "outage-subscriber", None);
    let settings = mqtt_settings(&format!(
        "name = \"broker\"\nhost = \"127.0.0.1\"\nport = {}\nack_timeout_ms = 2000",
        broker.port
    ));
    let sink = MqttSink::start(&settings, "box1", dir.path()).unwrap();
    let bus = AlertBus::start(
        &dir.path().join("journal"),
        vec![Box::new(sink)],
        8,
        &Metrics::new(),
    )
    .unwrap();
    subscriber.wait_for("online", Duration::from_secs(20), |s| {
        s.availability().last().map(String::as_str) == Some("online")
    });

    let sender = bus.sender();
    let per_phase = 60;
    let mut sent = 0u64;
    // Back to back, so that when the broker stops some alerts are still queued or in flight:
    // only a sink that waits for each PUBACK keeps them.
    let mut send_some = |count: u64, pause: Duration| {
        for _ in 0..count {
            let stream = if sent.is_multiple_of(2) {
                "cam0"
            } else {
                "cam1"
            };
            sender.send(numbered(stream, sent)).unwrap();
            sent += 1;
            std::thread::sleep(pause);
        }
    };
    send_some(per_phase, Duration::ZERO);
    broker.stop();
    send_some(per_phase, Duration::from_millis(5));
    std::thread::sleep(Duration::from_secs(1));
    broker.resume();
    send_some(per_phase, Duration::ZERO);

    let total = 3 * per_phase as usize;
    subscriber.wait_for("every alert", Duration::from_secs(90), |s| {
        first_arrivals(&s.events())
            .0
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == total
    });
    drop(sender);
    bus.close().unwrap();
    subscriber.wait_for("offline on a clean stop", Duration::from_secs(10), |s| {
        s.availability().last().map(String::as_str) == Some("offline")
    });

    let events = subscriber.events();
    let (per_stream, repeats) = first_arrivals(&events);
    println!(
        "broker outage: sent {total}, received {} ({} unique, {repeats} repeated)",
        events.len(),
        total
    );
    // QoS 1: the publish in flight when the broker stopped may have reached it without its
    // PUBACK coming back; it is sent again. Consumers deduplicate on the id.
    assert!(repeats <= 1, "{repeats} alerts repeated");
    // The sending order, carried in `event`, is the arrival order within each stream, and the
    // ids the journal gave follow it.
    for (stream, ids) in &per_stream {
        assert_eq!(ids.len(), total / 2, "{stream}");
        assert!(is_increasing(ids), "{stream} out of order: {ids:?}");
        let mut order = events
            .iter()
            .filter(|e| e["alert"]["stream"] == stream.as_str())
            .map(|e| e["alert"]["event"].as_u64().unwrap())
            .collect::<Vec<_>>();
        order.dedup();
        assert!(is_increasing(&order), "{stream} out of order: {order:?}");
    }
    let first = &events[0];
    assert_eq!(first["box"], "box1");
    assert_eq!(first["type"], "new");
    let topics: BTreeSet<String> = subscriber
        .received()
        .iter()
        .filter(|r| !r.retain)
        .map(|r| r.topic.clone())
        .collect();
    assert!(topics.contains("vigil/box1/cam0/m/events"), "{topics:?}");
    assert!(topics.contains("vigil/box1/cam1/m/events"), "{topics:?}");
}

fn run_vigil(profile: &Path, stderr: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("run")
        .arg(profile)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

fn unique_ids(alerts: &[serde_json::Value]) -> BTreeSet<u64> {
    alerts.iter().map(|a| a["id"].as_u64().unwrap()).collect()
}

/// The whole binary: killed once with the broker up (the broker announces it dead), once with
/// the broker down and alerts waiting in its journal; the third run delivers them.
#[test]
fn sigkill_mid_run_loses_nothing_and_the_last_will_announces_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("broker")).unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "allow_anonymous true");
    let subscriber = Subscriber::connect(broker.port, "sigkill-subscriber", None);
    let alerts_file = dir.path().join("alerts.jsonl");
    let events: Vec<String> = (0..10)
        .map(|n| format!("{{ at_s = {}.0, kind = \"gunshot\" }}", 1 + 2 * n))
        .collect();
    let profile = dir.path().join("box.toml");
    std::fs::write(
        &profile,
        format!(
            r#"
[box]
name = "box1"
[alerts]
journal = "journal"
sinks = [
    {{ kind = "mqtt", name = "broker", host = "127.0.0.1", port = {port}, keep_alive_s = 5, ack_timeout_ms = 2000 }},
    {{ kind = "jsonl", name = "file", path = "alerts.jsonl" }},
]
[[stream]]
name = "mic"
model = "yamnet"
source = {{ kind = "synth", duration_s = 21.0, realtime = true, events = [{events}] }}
[stream.audio_events]
events = [{{ label = "gunshot", classes = ["Gunshot, gunfire", "Explosion", "Burst, pop"], on = 0.25, off = 0.1 }}]
"#,
            port = broker.port,
            events = events.join(", ")
        ),
    )
    .unwrap();
    let journaled = || unique_ids(&common::read_alerts(&alerts_file));
    let wait_until = |what: &str, within: Duration, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Run 1, broker up: alerts flow; SIGKILL; the broker publishes the Last Will.
    let mut vigil = run_vigil(&profile, &dir.path().join("run1.log"));
    subscriber.wait_for("two alerts", Duration::from_secs(60), |s| {
        s.events().len() >= 2
    });
    vigil.kill().unwrap();
    vigil.wait().unwrap();
    subscriber.wait_for("the Last Will", Duration::from_secs(20), |s| {
        s.availability()
            .ends_with(&["online".to_string(), "offline".to_string()])
    });
    let after_run1 = journaled().len();

    // Run 2, broker down: alerts wait in the journal; SIGKILL with them unacknowledged.
    broker.stop();
    let mut vigil = run_vigil(&profile, &dir.path().join("run2.log"));
    wait_until(
        "alerts journaled while the broker is down",
        Duration::from_secs(60),
        &|| journaled().len() >= after_run1 + 3,
    );
    vigil.kill().unwrap();
    vigil.wait().unwrap();
    let before_run3 = journaled();

    // Run 3, broker back: the journal delivers what was never acknowledged, then the run ends.
    broker.resume();
    let mut vigil = run_vigil(&profile, &dir.path().join("run3.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = vigil.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "run 3 did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(dir.path().join("run3.log")).unwrap()
    );
    let all = journaled();
    subscriber.wait_for("every journaled alert", Duration::from_secs(30), |s| {
        all.is_subset(&unique_ids(
            &s.events()
                .iter()
                .map(|e| e["alert"].clone())
                .collect::<Vec<_>>(),
        ))
    });

    let events = subscriber.events();
    let (per_stream, repeats) = first_arrivals(&events);
    let received = per_stream["mic"].clone();
    println!(
        "SIGKILL: {} alerts journaled over 3 runs ({} while the broker was down), broker \
         received {} ({} unique, {repeats} repeated)",
        all.len(),
        before_run3.len() - after_run1,
        events.len(),
        received.len()
    );
    assert_eq!(received.iter().copied().collect::<BTreeSet<_>>(), all);
    assert!(is_increasing(&received), "out of order: {received:?}");
    assert_eq!(
        subscriber.availability().last().map(String::as_str),
        Some("offline"),
        "a clean end announces offline"
    );
}

/// Certificates for a TLS broker on 127.0.0.1, made with the openssl command.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is not installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=vigil test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

fn tls_broker(dir: &Path) -> Mosquitto {
    make_certificates(dir);
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "").unwrap();
    let out = Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwords)
        .args(["edge", "s3cret"])
        .output()
        .expect("mosquitto_passwd is not installed (Debian package mosquitto)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mosquitto::start(
        dir,
        &format!(
            "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
             allow_anonymous false\npassword_file {0}/passwords",
            dir.display()
        ),
    )
}

#[test]
fn tls_with_a_password_delivers_and_a_wrong_password_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    std::fs::write(dir.path().join("mqtt.pass"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("wrong.pass"), "guess\n").unwrap();
    let tls = MqttTls {
        ca: Some(dir.path().join("ca.pem")),
        cert: None,
        key: None,
    };
    let client_tls = vigil::sinks::mqtt::rustls_config(&tls, dir.path()).unwrap();
    let subscriber = Subscriber::connect_as(
        broker.port,
        "tls-subscriber",
        Some(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
            Arc::new(client_tls),
        ))),
        Some(("edge", "s3cret")),
    );
    let settings = |password_file: &str| {
        mqtt_settings(&format!(
            "name = \"broker\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"edge\"\n\
             password_file = \"{password_file}\"\ntls = {{ ca = \"ca.pem\" }}",
            broker.port
        ))
    };

    let mut sink = MqttSink::start(&settings("mqtt.pass"), "box1", dir.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(err) = sink.deliver(&numbered("cam0", 7)) {
        assert!(Instant::now() < deadline, "{err}\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    subscriber.wait_for("the alert over TLS", Duration::from_secs(20), |s| {
        s.events().iter().any(|e| e["alert"]["event"] == 7)
    });
    drop(sink);

    let mut refused = MqttSink::start(&settings("wrong.pass"), "box2", dir.path()).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let err = refused
        .deliver(&numbered("cam0", 8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the connection"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}", broker.port)), "{err}");
    assert!(
        !subscriber.events().iter().any(|e| e["alert"]["event"] == 8),
        "a refused client published"
    );
}

#[test]
fn bad_mqtt_settings_are_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let start = |text: &str, box_name: &str| {
        MqttSink::start(&mqtt_settings(text), box_name, dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let base = "name = \"b\"\nhost = \"127.0.0.1\"\n";
    let err = start(&format!("{base}tls = {{ ca = \"missing.pem\" }}"), "box");
    assert!(err.contains("missing.pem"), "{err}");
    std::fs::write(dir.path().join("empty.pem"), "not a certificate").unwrap();
    let err = start(&format!("{base}tls = {{ ca = \"empty.pem\" }}"), "box");
    assert!(err.contains("no PEM certificate"), "{err}");
    let err = start(&format!("{base}password_file = \"p\""), "box");
    assert!(err.contains("password_file without username"), "{err}");
    let err = start(
        &format!("{base}username = \"u\"\npassword_file = \"nope\""),
        "box",
    );
    assert!(
        err.contains("cannot read password_file") && err.contains("nope"),
        "{err}"
    );
    let err = start(base, "line/7");
    assert!(err.contains("contains '/'"), "{err}");
    let err = start(&format!("{base}tls = {{ cert = \"c.pem\" }}"), "box");
    assert!(err.contains("go together"), "{err}");
    assert!(toml::from_str::<MqttSettings>(&format!("{base}qos = 2")).is_err());
}
