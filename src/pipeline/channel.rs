//! The kinds of bounded channel the design allows: one that drops the oldest message when full
//! (live sensor data: latency stays bounded, every drop counted), one that blocks (alerts: never
//! dropped), and, for recorded data replayed as a stream, one that waits for room until the
//! pipeline stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use crate::metrics::Counter;

/// The sending end of a stage queue. Live data never blocks: when the channel is full the
/// oldest queued message is discarded to make room and the drop is counted. Recorded data
/// waits for room instead (see `wait_while_running`). The sender holds a receiver too, so the
/// channel stays open while it lives: shutdown travels downstream by dropping senders, and
/// upstream by the pipeline's stop flag.
pub struct StageSender<T> {
    tx: Sender<T>,
    // A receiver clone lets the producer evict the head of the queue itself.
    evict: Receiver<T>,
    dropped: Counter,
    /// Set for data that must not be dropped (a recorded scene replayed, a file of lines):
    /// `send` then waits for room — backpressure — until the pipeline stops.
    wait_while_running: Option<Arc<AtomicBool>>,
}

impl<T> StageSender<T> {
    pub fn send(&self, mut message: T) {
        if let Some(stop) = &self.wait_while_running {
            loop {
                match self.tx.send_timeout(message, Duration::from_millis(50)) {
                    Ok(()) | Err(SendTimeoutError::Disconnected(_)) => return,
                    Err(SendTimeoutError::Timeout(back)) if stop.load(Ordering::SeqCst) => {
                        drop(back);
                        self.dropped.inc();
                        return;
                    }
                    Err(SendTimeoutError::Timeout(back)) => message = back,
                }
            }
        }
        loop {
            match self.tx.try_send(message) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    message = back;
                    if self.evict.try_recv().is_ok() {
                        self.dropped.inc();
                    }
                }
            }
        }
    }
}

/// A drop-oldest channel of `capacity` messages whose drops are counted on `dropped`.
pub fn drop_oldest<T>(capacity: usize, dropped: Counter) -> (StageSender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    (
        StageSender {
            tx,
            evict: rx.clone(),
            dropped,
            wait_while_running: None,
        },
        rx,
    )
}

/// A stage queue: drop-oldest when `wait_until_stop` is `None`; otherwise the sender waits for
/// room until that flag is set (then what cannot be queued is dropped and counted, so shutdown
/// never hangs).
pub fn queue<T>(
    capacity: usize,
    dropped: Counter,
    wait_until_stop: Option<Arc<AtomicBool>>,
) -> (StageSender<T>, Receiver<T>) {
    let (mut tx, rx) = drop_oldest(capacity, dropped);
    tx.wait_while_running = wait_until_stop;
    (tx, rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn a_full_channel_drops_the_oldest_and_counts_it() {
        let metrics = Metrics::new();
        let dropped = metrics.frames_dropped("test", "t");
        let (tx, rx) = drop_oldest(3, dropped.clone());
        for i in 0..10 {
            tx.send(i);
        }
        let left: Vec<i32> = rx.try_iter().collect();
        assert_eq!(left, vec![7, 8, 9]);
        assert_eq!(dropped.get(), 7);
    }
}
