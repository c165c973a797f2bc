//! Under overload a pipeline drops the oldest data, counts every drop, keeps what it processes
//! fresh, and still delivers every alert.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use vigil::alert::Alert;
use vigil::capture::synth::{SynthConfig, SynthSource};
use vigil::capture::{Sample, Stamp};
use vigil::metrics::Metrics;
use vigil::pipeline::{Decide, Detect, Pipeline, PipelineSettings, Prepare, StageError};

struct Forward;

impl Prepare for Forward {
    type Output = u64;
    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, u64),
    ) -> Result<(), StageError> {
        emit(*sample.stamp(), sample.stamp().seq);
        Ok(())
    }
}

/// A detector ten times slower than the source.
struct Slow;

impl Detect for Slow {
    type Input = u64;
    type Output = u64;
    fn detect(&mut self, seq: u64) -> Result<u64, StageError> {
        std::thread::sleep(Duration::from_millis(10));
        Ok(seq)
    }
}

/// Records what it sees and raises an alert for every processed message.
struct Record(Arc<Mutex<Vec<(u64, Duration)>>>);

impl Decide for Record {
    type Input = u64;
    fn decide(&mut self, stamp: Stamp, seq: u64, emit: &mut dyn FnMut(Alert)) {
        let age = SystemTime::now()
            .duration_since(stamp.captured_at)
            .unwrap_or_default();
        self.0.lock().unwrap().push((seq, age));
        emit(common::alert(seq));
    }
    fn finish(&mut self, _: &mut dyn FnMut(Alert)) {}
}

#[test]
fn overload_drops_oldest_counts_drops_and_keeps_latency_bounded() {
    // 1 ms blocks delivered in real time: 1000 messages per second into a 100/s detector.
    let source = SynthSource::new(SynthConfig {
        rate: 16_000,
        duration_s: 1.5,
        events: vec![],
        realtime: true,
        block_ms: 1,
        seed: 0,
    })
    .unwrap();
    let metrics = Metrics::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    // The alert channel is tiny and slow to drain: alerts must block, never drop.
    let (alerts_tx, alerts_rx) = crossbeam_channel::bounded(1);
    let drain = std::thread::spawn(move || {
        let mut n = 0;
        while alerts_rx.recv().is_ok() {
            std::thread::sleep(Duration::from_millis(2));
            n += 1;
        }
        n
    });
    let pipeline = Pipeline::spawn(
        "s",
        source,
        Forward,
        Slow,
        Record(seen.clone()),
        alerts_tx,
        &metrics,
        PipelineSettings {
            queue_depth: 2,
            ..PipelineSettings::default()
        },
    )
    .unwrap();
    pipeline.wait().unwrap();
    let alerts = drain.join().unwrap();

    let seen = seen.lock().unwrap();
    let frames_in = metrics.frames_in("s").get();
    let dropped: u64 = ["prepare", "detect", "decide"]
        .iter()
        .map(|s| metrics.frames_dropped("s", s).get())
        .sum();
    assert_eq!(frames_in, 1500);
    assert_eq!(
        frames_in,
        seen.len() as u64 + dropped,
        "every message is either processed or counted as dropped"
    );
    assert!(
        dropped > 1000,
        "the detector takes ~150 of 1500, dropped {dropped}"
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "order is kept");
    // Fresh data: with two slots before a 10 ms stage, nothing waits much more than ~30 ms.
    let worst = seen.iter().map(|(_, age)| *age).max().unwrap();
    assert!(
        worst < Duration::from_millis(200),
        "oldest data processed was {worst:?} old"
    );
    assert_eq!(alerts, seen.len(), "every alert reached the bus");
}
