//! Metrics: a registry of counters, gauges and histograms, rendered in the Prometheus text
//! exposition format 0.0.4 and served on a small HTTP endpoint.
//!
//! Registration (at pipeline build) takes a lock and hands out a handle; the hot path only
//! touches the handle's atomics, never the registry. Handles are cheap clones of an `Arc`.
//!
//! ```ignore
//! let metrics = Metrics::new();
//! let frames = metrics.frames_in("cam0"); // once, while building the pipeline
//! frames.inc(); // per frame: one relaxed atomic add
//! let server = metrics::serve(metrics.clone(), "127.0.0.1:9464".parse()?)?;
//! ```
//!
//! Names follow the Prometheus conventions: a `vigil_` prefix, `_total` on counters, base
//! units (`_seconds`). The well-known families of the pipeline have typed helpers
//! ([`Metrics::frames_in`] and the like); others can be registered with
//! [`Metrics::counter`], [`Metrics::gauge`] and [`Metrics::histogram`].
//!
//! # The endpoint
//!
//! [`serve`] answers `GET /metrics` (and `HEAD`) on its own thread, one connection at a time,
//! closing each after the response: a scraper polls every few seconds, so concurrency would
//! buy nothing on an edge box but threads. Requests are bounded (a total deadline to send the
//! request head, a maximum head size), so a stuck or hostile client delays a scrape by at most
//! the deadline. It binds only loopback addresses unless
//! [`ServeOptions::allow_non_loopback`] is set: an edge box on a plant network should not
//! publish its metrics because of a typo in a profile; expose it on purpose or through a
//! reverse proxy or SSH tunnel.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::alert::Phase;

/// Buckets for latencies from 1 ms to 10 s, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why a metric could not be registered or the endpoint not started.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid metric name {name:?}: {detail}")]
    InvalidName { name: String, detail: &'static str },
    #[error("metric {metric} has an invalid label name {label:?}: {detail}")]
    InvalidLabel {
        metric: String,
        label: String,
        detail: &'static str,
    },
    #[error("metric {name} is already registered differently: {detail}")]
    Conflict { name: String, detail: String },
    #[error("histogram {name} has invalid buckets: {detail}")]
    InvalidBuckets { name: String, detail: String },
    #[error(
        "refusing to serve metrics on the non-loopback address {addr}; set allow_non_loopback \
         to expose them on purpose"
    )]
    NonLoopback { addr: SocketAddr },
    #[error("cannot bind the metrics endpoint to {addr}: {err}")]
    Bind { addr: SocketAddr, err: io::Error },
    #[error("cannot start the metrics server thread: {err}")]
    Spawn { err: io::Error },
}

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        // Relaxed: a counter orders nothing else, and a scrape may see it a moment late.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue depths, bytes held).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, delta: f64) {
        atomic_add_f64(&self.0, delta);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Counts of observations in buckets, plus their sum.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCore>);

#[derive(Debug)]
struct HistogramCore {
    /// Upper bounds, strictly increasing, without +Inf.
    bounds: Box<[f64]>,
    /// Observations per bucket (not cumulative), one more than `bounds` for +Inf.
    counts: Box<[AtomicU64]>,
    /// Sum of observations as f64 bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self(Arc::new(HistogramCore {
            bounds: bounds.into(),
            counts,
            sum: AtomicU64::new(0.0f64.to_bits()),
        }))
    }

    /// Records one observation. NaN is ignored: it would poison the sum forever.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let core = &self.0;
        // Linear: a dozen bounds, and small latencies (the common case) stop early.
        let bucket = core
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(core.bounds.len());
        if let Some(count) = core.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        atomic_add_f64(&core.sum, value);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }

    /// Records a duration given in nanoseconds, in seconds.
    pub fn observe_ns(&self, ns: u64) {
        self.observe(ns as f64 / 1e9);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of observations so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }
}

fn atomic_add_f64(cell: &AtomicU64, delta: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + delta).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    buckets: Vec<f64>,
    /// Keyed by label values, in the order of `label_names`.
    series: BTreeMap<Vec<String>, Series>,
}

/// A family the pipeline always has.
struct Known {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    buckets: &'static [f64],
}

const FRAMES_IN: Known = Known {
    name: "vigil_frames_in_total",
    help: "Frames (or audio blocks, or lines) received from a source.",
    kind: Kind::Counter,
    labels: &["stream"],
    buckets: &[],
};
const FRAMES_DROPPED: Known = Known {
    name: "vigil_frames_dropped_total",
    help: "Frames dropped, by the stage that dropped them.",
    kind: Kind::Counter,
    labels: &["stream", "stage"],
    buckets: &[],
};
const SOURCE_RESTARTS: Known = Known {
    name: "vigil_source_restarts_total",
    help: "Times a source was restarted after it failed or ended.",
    kind: Kind::Counter,
    labels: &["stream"],
    buckets: &[],
};
const ALERTS: Known = Known {
    name: "vigil_alerts_total",
    help: "Alert records produced, by phase.",
    kind: Kind::Counter,
    labels: &["stream", "label", "phase"],
    buckets: &[],
};
const INFERENCES: Known = Known {
    name: "vigil_inferences_total",
    help: "Model inferences run.",
    kind: Kind::Counter,
    labels: &["model"],
    buckets: &[],
};
const STAGE_LATENCY: Known = Known {
    name: "vigil_stage_latency_seconds",
    help: "Time a message spent in a pipeline stage.",
    kind: Kind::Histogram,
    labels: &["stage"],
    buckets: LATENCY_BUCKETS,
};
const CAPTURE_TO_ALERT: Known = Known {
    name: "vigil_capture_to_alert_seconds",
    help: "Time from sensor capture to the alert decision.",
    kind: Kind::Histogram,
    labels: &["stream"],
    buckets: LATENCY_BUCKETS,
};
const KNOWN: &[&Known] = &[
    &FRAMES_IN,
    &FRAMES_DROPPED,
    &SOURCE_RESTARTS,
    &ALERTS,
    &INFERENCES,
    &STAGE_LATENCY,
    &CAPTURE_TO_ALERT,
];

/// The metrics registry. Clones share the same metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the pipeline's families declared (they render once they have series).
    pub fn new() -> Self {
        let families = KNOWN
            .iter()
            .map(|known| {
                let family = Family {
                    help: known.help.to_string(),
                    kind: known.kind,
                    label_names: known.labels.iter().map(|l| l.to_string()).collect(),
                    buckets: known.buckets.to_vec(),
                    series: BTreeMap::new(),
                };
                (known.name.to_string(), family)
            })
            .collect();
        Self {
            families: Arc::new(Mutex::new(families)),
        }
    }

    /// `vigil_frames_in_total{stream}`.
    pub fn frames_in(&self, stream: &str) -> Counter {
        self.known_counter(&FRAMES_IN, &[stream])
    }

    /// `vigil_frames_dropped_total{stream,stage}`.
    pub fn frames_dropped(&self, stream: &str, stage: &str) -> Counter {
        self.known_counter(&FRAMES_DROPPED, &[stream, stage])
    }

    /// `vigil_source_restarts_total{stream}`.
    pub fn source_restarts(&self, stream: &str) -> Counter {
        self.known_counter(&SOURCE_RESTARTS, &[stream])
    }

    /// `vigil_alerts_total{stream,label,phase}`; the phase as the alert JSON spells it.
    pub fn alerts(&self, stream: &str, label: &str, phase: Phase) -> Counter {
        let phase = match phase {
            Phase::New => "new",
            Phase::Update => "update",
            Phase::End => "end",
        };
        self.known_counter(&ALERTS, &[stream, label, phase])
    }

    /// `vigil_inferences_total{model}`.
    pub fn inferences(&self, model: &str) -> Counter {
        self.known_counter(&INFERENCES, &[model])
    }

    /// `vigil_stage_latency_seconds{stage}`.
    pub fn stage_latency(&self, stage: &str) -> Histogram {
        self.known_histogram(&STAGE_LATENCY, &[stage])
    }

    /// `vigil_capture_to_alert_seconds{stream}`.
    pub fn capture_to_alert(&self, stream: &str) -> Histogram {
        self.known_histogram(&CAPTURE_TO_ALERT, &[stream])
    }

    /// Registers (or finds) a counter. The name must end in `_total`; the first registration
    /// of a name fixes its help text and label names.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Counter, MetricsError> {
        if !name.ends_with("_total") {
            return Err(MetricsError::InvalidName {
                name: name.to_string(),
                detail: "counter names end in _total",
            });
        }
        match self.register(name, help, Kind::Counter, &[], labels)? {
            Series::Counter(counter) => Ok(counter),
            _ => Err(kind_conflict(name)),
        }
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Gauge, MetricsError> {
        match self.register(name, help, Kind::Gauge, &[], labels)? {
            Series::Gauge(gauge) => Ok(gauge),
            _ => Err(kind_conflict(name)),
        }
    }

    /// Registers (or finds) a histogram with the given bucket upper bounds (finite, strictly
    /// increasing; +Inf is implied).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[(&str, &str)],
    ) -> Result<Histogram, MetricsError> {
        if buckets.is_empty() {
            return Err(MetricsError::InvalidBuckets {
                name: name.to_string(),
                detail: "no buckets".to_string(),
            });
        }
        if let Some(bad) = buckets.iter().find(|b| !b.is_finite()) {
            return Err(MetricsError::InvalidBuckets {
                name: name.to_string(),
                detail: format!("bound {bad} is not finite (+Inf is implied)"),
            });
        }
        if let Some(pair) = buckets.windows(2).find(|w| w[0] >= w[1]) {
            return Err(MetricsError::InvalidBuckets {
                name: name.to_string(),
                detail: format!("bounds {} and {} are not increasing", pair[0], pair[1]),
            });
        }
        match self.register(name, help, Kind::Histogram, buckets, labels)? {
            Series::Histogram(histogram) => Ok(histogram),
            _ => Err(kind_conflict(name)),
        }
    }

    fn known_counter(&self, known: &Known, values: &[&str]) -> Counter {
        match self.known_series(known, values) {
            Some(Series::Counter(counter)) => counter,
            // Unreachable in practice: known families are declared in `new` with the right
            // kind. A detached handle keeps the pipeline running if it ever happens.
            _ => Counter::default(),
        }
    }

    fn known_histogram(&self, known: &Known, values: &[&str]) -> Histogram {
        match self.known_series(known, values) {
            Some(Series::Histogram(histogram)) => histogram,
            _ => Histogram::new(known.buckets),
        }
    }

    fn known_series(&self, known: &Known, values: &[&str]) -> Option<Series> {
        let labels: Vec<(&str, &str)> = known
            .labels
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        match self.register(known.name, known.help, known.kind, known.buckets, &labels) {
            Ok(series) => Some(series),
            Err(err) => {
                log::error!("metrics: {err}");
                None
            }
        }
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        buckets: &[f64],
        labels: &[(&str, &str)],
    ) -> Result<Series, MetricsError> {
        check_metric_name(name)?;
        for (i, (label, _)) in labels.iter().enumerate() {
            check_label_name(name, label, kind)?;
            if labels[..i].iter().any(|(other, _)| other == label) {
                return Err(MetricsError::InvalidLabel {
                    metric: name.to_string(),
                    label: label.to_string(),
                    detail: "label given twice",
                });
            }
        }
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            label_names: labels.iter().map(|(l, _)| l.to_string()).collect(),
            buckets: buckets.to_vec(),
            series: BTreeMap::new(),
        });
        if family.kind != kind {
            return Err(MetricsError::Conflict {
                name: name.to_string(),
                detail: format!("it is a {}, not a {}", family.kind.as_str(), kind.as_str()),
            });
        }
        if family.help != help {
            return Err(MetricsError::Conflict {
                name: name.to_string(),
                detail: format!("its help is {:?}", family.help),
            });
        }
        if !family
            .label_names
            .iter()
            .map(String::as_str)
            .eq(labels.iter().map(|(l, _)| *l))
        {
            return Err(MetricsError::Conflict {
                name: name.to_string(),
                detail: format!("its labels are {:?}", family.label_names),
            });
        }
        if family.buckets != buckets {
            return Err(MetricsError::Conflict {
                name: name.to_string(),
                detail: format!("its buckets are {:?}", family.buckets),
            });
        }
        let values: Vec<String> = labels.iter().map(|(_, v)| v.to_string()).collect();
        let series = family.series.entry(values).or_insert_with(|| match kind {
            Kind::Counter => Series::Counter(Counter::default()),
            Kind::Gauge => Series::Gauge(Gauge::default()),
            Kind::Histogram => Series::Histogram(Histogram::new(buckets)),
        });
        Ok(series.clone())
    }

    /// The metrics in the Prometheus text format 0.0.4, families sorted by name, series by
    /// label values. Families without series are left out.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(4096);
        for (name, family) in families.iter() {
            if family.series.is_empty() {
                continue;
            }
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape_into(&mut out, &family.help, false);
            out.push('\n');
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (values, series) in &family.series {
                let labels = &family.label_names;
                match series {
                    Series::Counter(counter) => {
                        sample(&mut out, name, "", labels, values, None);
                        let _ = writeln!(out, " {}", counter.get());
                    }
                    Series::Gauge(gauge) => {
                        sample(&mut out, name, "", labels, values, None);
                        let _ = writeln!(out, " {}", fmt_f64(gauge.get()));
                    }
                    Series::Histogram(histogram) => {
                        render_histogram(&mut out, name, labels, values, histogram);
                    }
                }
            }
        }
        out
    }
}

fn kind_conflict(name: &str) -> MetricsError {
    MetricsError::Conflict {
        name: name.to_string(),
        detail: "it is registered with another type".to_string(),
    }
}

fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &[String],
    values: &[String],
    histogram: &Histogram,
) {
    let core = &histogram.0;
    // Cumulative counts from one pass over the buckets, so that +Inf and _count agree even
    // while observations land during the render.
    let mut cumulative = 0u64;
    for (i, count) in core.counts.iter().enumerate() {
        cumulative += count.load(Ordering::Relaxed);
        let le = core
            .bounds
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| fmt_f64(*b));
        sample(out, name, "_bucket", labels, values, Some(&le));
        let _ = writeln!(out, " {cumulative}");
    }
    sample(out, name, "_sum", labels, values, None);
    let _ = writeln!(out, " {}", fmt_f64(histogram.sum()));
    sample(out, name, "_count", labels, values, None);
    let _ = writeln!(out, " {cumulative}");
}

/// Writes `name suffix{labels}` (no value).
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[String],
    values: &[String],
    le: Option<&str>,
) {
    out.push_str(name);
    out.push_str(suffix);
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let pairs = labels
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(String::as_str))
        .chain(le.map(|le| ("le", le)));
    for (label, value) in pairs {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        escape_into(out, value, true);
        out.push('"');
    }
    out.push('}');
}

/// Escapes backslash and newline (and, in label values, the double quote) as 0.0.4 requires.
fn escape_into(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// A float as Prometheus parses it: Go-style special values, plain decimals otherwise.
fn fmt_f64(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}

fn check_metric_name(name: &str) -> Result<(), MetricsError> {
    let valid = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if name.is_empty() || !valid {
        return Err(MetricsError::InvalidName {
            name: name.to_string(),
            detail: "names match [a-zA-Z_:][a-zA-Z0-9_:]*",
        });
    }
    Ok(())
}

fn check_label_name(metric: &str, label: &str, kind: Kind) -> Result<(), MetricsError> {
    let invalid = |detail| MetricsError::InvalidLabel {
        metric: metric.to_string(),
        label: label.to_string(),
        detail,
    };
    let valid = label
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
    if label.is_empty() || !valid {
        return Err(invalid("label names match [a-zA-Z_][a-zA-Z0-9_]*"));
    }
    if label.starts_with("__") {
        return Err(invalid("label names starting with __ are reserved"));
    }
    if kind == Kind::Histogram && label == "le" {
        return Err(invalid("le is the bucket label of histograms"));
    }
    Ok(())
}

/// How the metrics endpoint behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Bind addresses other than loopback (see the module docs).
    pub allow_non_loopback: bool,
    /// A client must send its request head within this time, and take the response within it.
    pub request_timeout: Duration,
    /// Largest request head accepted; larger gets 431.
    pub max_request_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            allow_non_loopback: false,
            request_timeout: Duration::from_secs(5),
            max_request_bytes: 8 * 1024,
        }
    }
}

/// The running endpoint. Stops on [`MetricsServer::shutdown`] or drop.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `metrics` on `addr` (loopback only) with the default [`ServeOptions`].
pub fn serve(metrics: Metrics, addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
    serve_with(metrics, addr, ServeOptions::default())
}

/// Serves `metrics` on `addr`. Port 0 picks a free port; see [`MetricsServer::local_addr`].
pub fn serve_with(
    metrics: Metrics,
    addr: SocketAddr,
    options: ServeOptions,
) -> Result<MetricsServer, MetricsError> {
    if !addr.ip().to_canonical().is_loopback() && !options.allow_non_loopback {
        return Err(MetricsError::NonLoopback { addr });
    }
    let listener = TcpListener::bind(addr).map_err(|err| MetricsError::Bind { addr, err })?;
    let local_addr = listener
        .local_addr()
        .map_err(|err| MetricsError::Bind { addr, err })?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name("vigil-metrics".to_string())
        .spawn({
            let stop = Arc::clone(&stop);
            move || accept_loop(&listener, &metrics, &options, &stop)
        })
        .map_err(|err| MetricsError::Spawn { err })?;
    log::info!("metrics: serving http://{local_addr}/metrics");
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

impl MetricsServer {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, finishes the connection in progress and joins the thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // The thread blocks in accept(); a connection of our own wakes it to see the flag.
        let wake = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.local_addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.local_addr.port())
            }
            _ => self.local_addr,
        };
        match TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
            Ok(_) => {
                if thread.join().is_err() {
                    log::error!("metrics: the server thread panicked");
                }
            }
            // Joining could hang forever; leave the thread blocked in accept instead.
            Err(err) => log::warn!("metrics: cannot wake the server thread to stop it: {err}"),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn accept_loop(
    listener: &TcpListener,
    metrics: &Metrics,
    options: &ServeOptions,
    stop: &AtomicBool,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        match conn {
            Ok(stream) => {
                if let Err(err) = handle(stream, metrics, options) {
                    log::debug!("metrics: request failed: {err}");
                }
            }
            Err(err) => {
                // Typically out of file descriptors; back off rather than spin.
                log::warn!("metrics: accept failed: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Answers one request on `stream`, then closes it.
fn handle(mut stream: TcpStream, metrics: &Metrics, options: &ServeOptions) -> io::Result<()> {
    stream.set_write_timeout(Some(options.request_timeout))?;
    let deadline = Instant::now() + options.request_timeout;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head_len = loop {
        if let Some(len) = head_end(&head) {
            break len;
        }
        if head.len() > options.max_request_bytes {
            return respond(
                stream,
                431,
                "Request Header Fields Too Large",
                &[],
                b"",
                false,
            );
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return respond(stream, 408, "Request Timeout", &[], b"", false);
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return respond(stream, 408, "Request Timeout", &[], b"", false);
            }
            Err(err) => return Err(err),
        }
    };
    if head_len > options.max_request_bytes {
        return respond(
            stream,
            431,
            "Request Header Fields Too Large",
            &[],
            b"",
            false,
        );
    }

    let Some(request_line) = head
        .split(|&b| b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
    else {
        return respond(stream, 400, "Bad Request", &[], b"", false);
    };
    let mut parts = request_line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return respond(stream, 400, "Bad Request", &[], b"", false);
    };
    if !version.starts_with("HTTP/1.") {
        return respond(stream, 505, "HTTP Version Not Supported", &[], b"", false);
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return respond(stream, 404, "Not Found", &[], b"", method == "HEAD");
    }
    match method {
        "GET" | "HEAD" => {
            let body = metrics.render();
            respond(
                stream,
                200,
                "OK",
                &[("Content-Type", CONTENT_TYPE)],
                body.as_bytes(),
                method == "HEAD",
            )
        }
        _ => respond(
            stream,
            405,
            "Method Not Allowed",
            &[("Allow", "GET, HEAD")],
            b"",
            false,
        ),
    }
}

/// Length of the request head including its blank line, once it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    // Tolerate bare-LF clients (netcat, hand-typed requests).
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn respond(
    mut stream: TcpStream,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut response = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        let _ = write!(response, "{name}: {value}\r\n");
    }
    let _ = write!(
        response,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()?;
    // Closing with unread request bytes makes the kernel send a reset, which can destroy the
    // response before the client reads it; half-close and drain briefly instead.
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut sink = [0u8; 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exact_text_format() {
        let metrics = Metrics::new();
        metrics.frames_in("cam0").add(3);
        metrics.frames_in("cam1").inc();
        metrics.frames_dropped("cam0", "prepare").add(2);
        metrics.alerts("cam0", "scratch", Phase::New).inc();
        let latency = metrics.stage_latency("detect");
        latency.observe(0.003);
        latency.observe(0.2);
        latency.observe(20.0);
        latency.observe(0.005); // on a bound: counted in that bucket (le is inclusive)

        let expected = "\
# HELP vigil_alerts_total Alert records produced, by phase.
# TYPE vigil_alerts_total counter
vigil_alerts_total{stream=\"cam0\",label=\"scratch\",phase=\"new\"} 1
# HELP vigil_frames_dropped_total Frames dropped, by the stage that dropped them.
# TYPE vigil_frames_dropped_total counter
vigil_frames_dropped_total{stream=\"cam0\",stage=\"prepare\"} 2
# HELP vigil_frames_in_total Frames (or audio blocks, or lines) received from a source.
# TYPE vigil_frames_in_total counter
vigil_frames_in_total{stream=\"cam0\"} 3
vigil_frames_in_total{stream=\"cam1\"} 1
# HELP vigil_stage_latency_seconds Time a message spent in a pipeline stage.
# TYPE vigil_stage_latency_seconds histogram
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.001\"} 0
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.0025\"} 0
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.005\"} 2
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.01\"} 2
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.025\"} 2
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.05\"} 2
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.1\"} 2
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.25\"} 3
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"0.5\"} 3
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"1\"} 3
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"2.5\"} 3
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"5\"} 3
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"10\"} 3
vigil_stage_latency_seconds_bucket{stage=\"detect\",le=\"+Inf\"} 4
vigil_stage_latency_seconds_sum{stage=\"detect\"} 20.208
vigil_stage_latency_seconds_count{stage=\"detect\"} 4
";
        // The sum's last digits depend on float rounding; compare it numerically.
        let rendered = metrics.render();
        let (sum_line, rest): (Vec<&str>, Vec<&str>) = rendered
            .lines()
            .partition(|l| l.starts_with("vigil_stage_latency_seconds_sum"));
        let expected_rest: Vec<&str> = expected
            .lines()
            .filter(|l| !l.starts_with("vigil_stage_latency_seconds_sum"))
            .collect();
        assert_eq!(rest, expected_rest, "\n{rendered}");
        assert_eq!(sum_line.len(), 1);
        let sum: f64 = sum_line[0]
            .strip_prefix("vigil_stage_latency_seconds_sum{stage=\"detect\"} ")
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.208).abs() < 1e-9);
        assert!(rendered.ends_with('\n'));
    }

    #[test]
    fn unlabelled_series_and_gauges_render_without_braces() {
        let metrics = Metrics::new();
        metrics
            .counter("vigil_test_total", "A test.", &[])
            .unwrap()
            .add(7);
        let gauge = metrics.gauge("vigil_test_bytes", "Bytes.", &[]).unwrap();
        gauge.set(1.5);
        gauge.add(-0.25);
        let h = metrics
            .histogram("vigil_test_seconds", "Seconds.", &[1.0], &[])
            .unwrap();
        h.observe(f64::NAN);
        h.observe(2.0);
        assert_eq!(
            metrics.render(),
            "\
# HELP vigil_test_bytes Bytes.
# TYPE vigil_test_bytes gauge
vigil_test_bytes 1.25
# HELP vigil_test_seconds Seconds.
# TYPE vigil_test_seconds histogram
vigil_test_seconds_bucket{le=\"1\"} 0
vigil_test_seconds_bucket{le=\"+Inf\"} 1
vigil_test_seconds_sum 2
vigil_test_seconds_count 1
# HELP vigil_test_total A test.
# TYPE vigil_test_total counter
vigil_test_total 7
"
        );
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_f64(f64::NAN), "NaN");
    }

    #[test]
    fn escapes_label_values_and_help() {
        let metrics = Metrics::new();
        metrics
            .counter(
                "vigil_escape_total",
                "Help with a \\ backslash\nand a \"quote\".",
                &[("path", "C:\\cam \"0\"\nline")],
            )
            .unwrap()
            .inc();
        assert_eq!(
            metrics.render(),
            "\
# HELP vigil_escape_total Help with a \\\\ backslash\\nand a \"quote\".
# TYPE vigil_escape_total counter
vigil_escape_total{path=\"C:\\\\cam \\\"0\\\"\\nline\"} 1
"
        );
    }

    #[test]
    fn handles_are_shared_and_registration_is_checked() {
        let metrics = Metrics::new();
        let a = metrics.frames_in("cam0");
        let b = metrics.clone().frames_in("cam0");
        a.inc();
        b.inc();
        assert_eq!(metrics.frames_in("cam0").get(), 2);

        let conflict = |r: Result<_, MetricsError>| matches!(r, Err(MetricsError::Conflict { .. }));
        let help = FRAMES_IN.help;
        assert!(conflict(
            metrics
                .gauge("vigil_frames_in_total", help, &[("stream", "x")])
                .map(|_| ())
        ));
        assert!(conflict(
            metrics
                .counter("vigil_frames_in_total", help, &[("camera", "x")])
                .map(|_| ())
        ));
        assert!(conflict(
            metrics
                .counter("vigil_frames_in_total", "Other help.", &[("stream", "x")])
                .map(|_| ())
        ));
        // The same family through the generic API is the same series.
        let c = metrics
            .counter("vigil_frames_in_total", help, &[("stream", "cam0")])
            .unwrap();
        assert_eq!(c.get(), 2);

        assert!(matches!(
            metrics.counter("vigil_frames", "x", &[]),
            Err(MetricsError::InvalidName { .. })
        ));
        assert!(matches!(
            metrics.counter("9_total", "x", &[]),
            Err(MetricsError::InvalidName { .. })
        ));
        assert!(matches!(
            metrics.counter("vigil_x_total", "x", &[("__name", "v")]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            metrics.counter("vigil_x_total", "x", &[("a-b", "v")]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            metrics.counter("vigil_x_total", "x", &[("a", "v"), ("a", "w")]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            metrics.histogram("vigil_h_seconds", "x", &[1.0], &[("le", "v")]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            metrics.histogram("vigil_h_seconds", "x", &[1.0, 1.0], &[]),
            Err(MetricsError::InvalidBuckets { .. })
        ));
        assert!(matches!(
            metrics.histogram("vigil_h_seconds", "x", &[f64::INFINITY], &[]),
            Err(MetricsError::InvalidBuckets { .. })
        ));
        assert!(matches!(
            metrics.histogram("vigil_h_seconds", "x", &[], &[]),
            Err(MetricsError::InvalidBuckets { .. })
        ));
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let metrics = Metrics::new();
        let counter = metrics.inferences("padim");
        let histogram = metrics.capture_to_alert("cam0");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counter.inc();
                        histogram.observe_ns(500_000_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.get(), 40_000);
        assert_eq!(histogram.count(), 40_000);
        assert_eq!(histogram.sum(), 20_000.0);
        let text = metrics.render();
        assert!(
            text.contains("vigil_capture_to_alert_seconds_bucket{stream=\"cam0\",le=\"0.25\"} 0\n")
        );
        assert!(
            text.contains(
                "vigil_capture_to_alert_seconds_bucket{stream=\"cam0\",le=\"0.5\"} 40000\n"
            )
        );
        assert!(text.contains("vigil_capture_to_alert_seconds_count{stream=\"cam0\"} 40000\n"));
    }

    /// Sends `request` raw and returns the whole response.
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8(response).unwrap()
    }

    fn status(response: &str) -> &str {
        response.split("\r\n").next().unwrap()
    }

    #[test]
    fn serves_metrics_over_http() {
        let metrics = Metrics::new();
        metrics.source_restarts("cam0").inc();
        let server = serve(metrics.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let response = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert_eq!(status(head), "HTTP/1.1 200 OK");
        assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert_eq!(body, metrics.render());
        assert!(body.contains("vigil_source_restarts_total{stream=\"cam0\"} 1\n"));

        let response = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 200 OK");
        let response = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 200 OK");
        assert!(response.ends_with("\r\n\r\n"), "HEAD has no body");
        let response = exchange(addr, b"GET /other HTTP/1.1\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 404 Not Found");
        let response = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert_eq!(status(&response), "HTTP/1.1 405 Method Not Allowed");
        assert!(response.contains("\r\nAllow: GET, HEAD\r\n"));
        let response = exchange(addr, b"GET\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 400 Bad Request");
        let response = exchange(addr, b"GET /metrics SPDY/3\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 505 HTTP Version Not Supported");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        huge.resize(20_000, b'a');
        let response = exchange(addr, &huge);
        assert_eq!(
            status(&response),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        // Bare-LF clients are tolerated.
        let response = exchange(addr, b"GET /metrics HTTP/1.1\n\n");
        assert_eq!(status(&response), "HTTP/1.1 200 OK");

        server.shutdown();
        assert!(TcpStream::connect(addr).is_err(), "listener closed");
    }

    #[test]
    fn slow_clients_time_out_and_do_not_block_the_endpoint() {
        let options = ServeOptions {
            request_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        };
        let server = serve_with(Metrics::new(), "127.0.0.1:0".parse().unwrap(), options).unwrap();
        let addr = server.local_addr();
        let started = Instant::now();
        // Half a request line, then nothing.
        let response = exchange(addr, b"GET /met");
        assert_eq!(status(&response), "HTTP/1.1 408 Request Timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        let response = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 200 OK");
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "drop stops the server");
    }

    #[test]
    fn refuses_non_loopback_unless_allowed() {
        for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:9464"] {
            assert!(matches!(
                serve(Metrics::new(), addr.parse().unwrap()),
                Err(MetricsError::NonLoopback { .. })
            ));
        }
        let options = ServeOptions {
            allow_non_loopback: true,
            ..ServeOptions::default()
        };
        let server = serve_with(Metrics::new(), "0.0.0.0:0".parse().unwrap(), options).unwrap();
        let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), server.local_addr().port());
        let response = exchange(loopback, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status(&response), "HTTP/1.1 200 OK");
        server.shutdown();
    }
}
