//! The alert bus never loses an alert: a sink that is down gets, after a restart, every alert
//! it missed, in order, once; a sink that was up is not sent them again.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::alert;
use vigil::alert::Alert;
use vigil::metrics::Metrics;
use vigil::sinks::{AlertBus, Sink, SinkError};

#[derive(Clone, Default)]
struct Recorder {
    name: String,
    down: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<u64>>>,
}

impl Sink for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError {
                sink: self.name.clone(),
                detail: "broker unreachable".into(),
            });
        }
        self.got.lock().unwrap().push(alert.id);
        Ok(())
    }
}

fn recorder(name: &str, down: bool) -> Recorder {
    Recorder {
        name: name.into(),
        down: Arc::new(AtomicBool::new(down)),
        ..Recorder::default()
    }
}

#[test]
fn alerts_missed_by_a_down_sink_are_replayed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let flaky = recorder("mqtt", true);
    let steady = recorder("file", false);

    let bus = AlertBus::start(
        dir.path(),
        vec![Box::new(flaky.clone()), Box::new(steady.clone())],
        4,
        &metrics,
    )
    .unwrap();
    let sender = bus.sender();
    for n in 0..20 {
        sender.send(alert(n)).unwrap();
    }
    drop(sender);
    bus.close().unwrap();
    assert!(flaky.got.lock().unwrap().is_empty());
    let steady_ids = steady.got.lock().unwrap().clone();
    // The journal numbers alerts consecutively (from a clock-derived base, so that ids stay
    // unique even if the journal folder is wiped).
    let first = steady_ids[0];
    assert_eq!(steady_ids, (first..first + 20).collect::<Vec<u64>>());

    // The process restarts; the broker is back.
    let flaky_again = recorder("mqtt", false);
    let steady_again = recorder("file", false);
    let bus = AlertBus::start(
        dir.path(),
        vec![
            Box::new(flaky_again.clone()),
            Box::new(steady_again.clone()),
        ],
        4,
        &metrics,
    )
    .unwrap();
    bus.sender().send(alert(99)).unwrap();
    bus.close().unwrap();
    assert_eq!(
        *flaky_again.got.lock().unwrap(),
        (first..first + 21).collect::<Vec<u64>>()
    );
    assert_eq!(
        *steady_again.got.lock().unwrap(),
        vec![first + 20],
        "no duplicates for a sink that had them"
    );
}

#[test]
fn a_sink_that_recovers_while_running_catches_up_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let flaky = recorder("webhook", true);
    let bus = AlertBus::start(dir.path(), vec![Box::new(flaky.clone())], 2, &metrics).unwrap();
    let sender = bus.sender();
    for n in 0..5 {
        sender.send(alert(n)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    flaky.down.store(false, Ordering::SeqCst);
    for n in 5..8 {
        sender.send(alert(n)).unwrap();
    }
    drop(sender);
    bus.close().unwrap();
    let got = flaky.got.lock().unwrap().clone();
    assert_eq!(got, (got[0]..got[0] + 8).collect::<Vec<u64>>());
}

#[test]
fn a_malformed_alert_is_refused_and_the_bus_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let sink = recorder("file", false);
    let bus =
        AlertBus::start(dir.path(), vec![Box::new(sink.clone())], 4, &Metrics::new()).unwrap();
    let sender = bus.sender();
    sender.send(alert(1)).unwrap();
    // serde_json writes NaN as null, which would not read back: the journal refuses it.
    let mut broken = alert(2);
    broken.threshold = f32::NAN;
    sender.send(broken).unwrap();
    sender.send(alert(3)).unwrap();
    drop(sender);
    bus.close().unwrap();
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        2,
        "the alerts before and after the broken one arrive: {got:?}"
    );
    assert_eq!(got[1], got[0] + 1, "the refused alert took no id");
}
