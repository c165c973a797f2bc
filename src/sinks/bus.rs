//! The alert bus: a bounded, blocking channel into one thread that journals every alert and
//! then delivers it to each sink, replaying what a sink has not acknowledged.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::Sink;
use super::journal::{Journal, JournalError};
use crate::alert::Alert;
use crate::metrics::{Counter, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("alert journal: {0}")]
    Journal(#[from] JournalError),
    #[error("cannot start the sink thread: {0}")]
    Thread(std::io::Error),
    #[error("sink metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// How long a sink that failed waits before the bus tries it again: doubled after each
/// failure in a row up to the maximum, so a broker or endpoint that is down for hours is not
/// hammered, and reset by the first success.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long the bus waits before retrying an append to a full journal.
const FULL_JOURNAL_WAIT: Duration = Duration::from_millis(500);
/// A bus with no alert for this long is idle.
const IDLE_AFTER: Duration = Duration::from_millis(200);

/// Owns the sink thread; dropping the last [`Sender`] and calling [`AlertBus::close`] drains it.
pub struct AlertBus {
    sender: Option<Sender<Alert>>,
    thread: Option<JoinHandle<Result<(), JournalError>>>,
}

struct Delivery {
    sink: Box<dyn Sink>,
    delivered: Counter,
    failed: Counter,
    /// The sink failed; everything from the journal's pending list is retried after a pause.
    behind: bool,
    /// When a sink that is behind is tried next, and the pause after that if it fails again.
    retry_at: Instant,
    retry_delay: Duration,
}

impl Delivery {
    fn failed(&mut self) {
        self.behind = true;
        self.retry_at = Instant::now() + self.retry_delay;
        self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
    }

    fn due(&self, now: Instant) -> bool {
        self.behind && self.retry_at <= now
    }
}

impl AlertBus {
    /// Opens the journal in `journal_dir`, replays what each sink missed, and starts the
    /// sink thread. `capacity` alerts may wait in the channel before producers block.
    pub fn start(
        journal_dir: &Path,
        sinks: Vec<Box<dyn Sink>>,
        capacity: usize,
        metrics: &Metrics,
    ) -> Result<Self, BusError> {
        let names: Vec<String> = sinks.iter().map(|s| s.name().to_string()).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let journal = Journal::open(journal_dir, &name_refs)?;
        let deliveries = sinks
            .into_iter()
            .map(|sink| -> Result<Delivery, BusError> {
                let labels = [("sink", sink.name())];
                Ok(Delivery {
                    delivered: metrics.counter(
                        "vigil_sink_delivered_total",
                        "Alerts a sink accepted",
                        &labels,
                    )?,
                    failed: metrics.counter(
                        "vigil_sink_failures_total",
                        "Failed deliveries, retried later from the journal",
                        &labels,
                    )?,
                    sink,
                    // Replay whatever the journal holds for it first.
                    behind: true,
                    retry_at: Instant::now(),
                    retry_delay: RETRY_FIRST,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let alerts_total = metrics.clone();
        let (sender, receiver) = crossbeam_channel::bounded(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("alert-bus".into())
            .spawn(move || run(journal, deliveries, receiver, alerts_total))
            .map_err(BusError::Thread)?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// A producer handle; `send` blocks while the channel is full.
    pub fn sender(&self) -> Sender<Alert> {
        match &self.sender {
            Some(sender) => sender.clone(),
            // After close there is nobody to deliver to: a disconnected sender makes producers
            // see the error instead of blocking forever.
            None => crossbeam_channel::bounded(0).0,
        }
    }

    /// Stops accepting alerts, waits until every queued alert is journaled and delivered (or
    /// left pending in the journal for a sink that is down), and returns the thread's result.
    pub fn close(mut self) -> Result<(), BusError> {
        self.sender.take();
        match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(result) => result.map_err(BusError::from),
                Err(_) => Err(BusError::Thread(std::io::Error::other(
                    "alert bus thread panicked",
                ))),
            },
            None => Ok(()),
        }
    }
}

fn run(
    mut journal: Journal,
    mut deliveries: Vec<Delivery>,
    receiver: Receiver<Alert>,
    metrics: Metrics,
) -> Result<(), JournalError> {
    // Replay first: anything journaled before a crash that a sink never acknowledged.
    catch_up(&mut journal, &mut deliveries, Retry::Due)?;
    loop {
        let now = Instant::now();
        let next_retry = deliveries
            .iter()
            .filter(|d| d.behind)
            .map(|d| d.retry_at.saturating_duration_since(now))
            .min();
        let timeout = next_retry.map_or(IDLE_AFTER, |wait| wait.min(IDLE_AFTER));
        match receiver.recv_timeout(timeout) {
            Ok(mut alert) => {
                if !append_durably(&mut journal, &mut alert, &mut deliveries)? {
                    continue;
                }
                metrics
                    .alerts(&alert.stream, &alert.label, alert.phase)
                    .inc();
                for delivery in deliveries.iter_mut().filter(|d| !d.behind) {
                    deliver(&mut journal, delivery, &alert)?;
                }
            }
            // Idle: persist acknowledgements now, so a crash after a quiet spell replays nothing.
            Err(RecvTimeoutError::Timeout) => journal.sync_acks()?,
            Err(RecvTimeoutError::Disconnected) => {
                // Last chance for sinks that were behind; what they still miss stays journaled.
                catch_up(&mut journal, &mut deliveries, Retry::All)?;
                journal.compact()?;
                return journal.close();
            }
        }
        catch_up(&mut journal, &mut deliveries, Retry::Due)?;
    }
}

/// Appends an alert, waiting for sinks to catch up while the journal is full: backpressure,
/// never a drop. `false` when the alert itself was malformed and refused.
fn append_durably(
    journal: &mut Journal,
    alert: &mut Alert,
    deliveries: &mut [Delivery],
) -> Result<bool, JournalError> {
    loop {
        match journal.append(alert) {
            Ok(_) => return Ok(true),
            Err(JournalError::Full { .. }) => {
                log::warn!("alert journal full; waiting for sinks to acknowledge");
                std::thread::sleep(FULL_JOURNAL_WAIT);
                catch_up(journal, deliveries, Retry::Due)?;
                journal.compact()?;
            }
            // One malformed alert (a NaN score, say) is that producer's bug: refuse it loudly
            // and keep the bus running for every other stream. Nothing was written.
            Err(err @ JournalError::Encode { .. }) => {
                log::error!("alert refused, not journaled: {err}: {alert:?}");
                return Ok(false);
            }
            Err(err) => return Err(err),
        }
    }
}

fn deliver(
    journal: &mut Journal,
    delivery: &mut Delivery,
    alert: &Alert,
) -> Result<(), JournalError> {
    match delivery.sink.deliver(alert) {
        Ok(()) => {
            delivery.delivered.inc();
            delivery.retry_delay = RETRY_FIRST;
            journal.ack(delivery.sink.name(), alert.id)
        }
        Err(err) => {
            delivery.failed.inc();
            delivery.failed();
            log::warn!(
                "{err}; alert {} stays in the journal, retried in {} ms",
                alert.id,
                delivery
                    .retry_at
                    .saturating_duration_since(Instant::now())
                    .as_millis()
            );
            Ok(())
        }
    }
}

/// Which lagging sinks [`catch_up`] tries.
#[derive(Clone, Copy)]
enum Retry {
    /// Those whose backoff has run out.
    Due,
    /// All of them: the bus is closing.
    All,
}

/// Delivers, in order, everything the journal holds that a lagging sink has not acknowledged.
fn catch_up(
    journal: &mut Journal,
    deliveries: &mut [Delivery],
    retry: Retry,
) -> Result<(), JournalError> {
    let now = Instant::now();
    for delivery in deliveries.iter_mut().filter(|d| match retry {
        Retry::Due => d.due(now),
        Retry::All => d.behind,
    }) {
        delivery.behind = false;
        for alert in journal.pending(delivery.sink.name())? {
            deliver(journal, delivery, &alert?)?;
            if delivery.behind {
                break;
            }
        }
    }
    Ok(())
}
