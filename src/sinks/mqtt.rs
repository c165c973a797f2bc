//! Alerts to an MQTT broker, in the shape Frigate and DeepStream users expect.
//!
//! - Events: `<prefix>/<box>/<stream>/<model>/events`, QoS 1, not retained, one JSON object per
//!   alert record: `{"type":"new"|"update"|"end","box":…,"alert":{…}}`. `alert.event` groups
//!   the records of one event; `alert.id` is unique per box and is what consumers deduplicate
//!   on (delivery is at least once).
//! - Availability: `<prefix>/<box>/availability`, retained, `online` after every connection and
//!   `offline` on a clean stop; the same `offline` is the Last Will, so the broker announces a
//!   box that died or lost its network once its keep-alive runs out.
//!
//! [`Sink::deliver`] returns only once the broker has acknowledged the publish (PUBACK), so the
//! journal forgets an alert only when the broker holds it. One publish is in flight at a time:
//! the bus delivers in journal order, and an alert that failed is retried before any later one,
//! which keeps each stream's records in order at the broker. A broker round trip per alert is
//! ample for alert rates (a LAN broker acknowledges in about a millisecond).
//!
//! The session is clean: after a reconnection nothing is resent by the client library, the bus
//! replays what the broker never acknowledged from the journal. An alert can still arrive twice
//! when the connection drops after the broker took the publish but before its PUBACK came back.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Sink, SinkError};
use crate::alert::Alert;
pub use crate::sinks::settings::{MqttSettings, MqttTls, bad_topic_level};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rumqttc::{
    Client, Connection, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};

/// What the connection thread tells the publishing side.
#[derive(Debug)]
enum LinkEvent {
    /// A QoS 1 publish left with this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
    /// The connection dropped (or could not be made); the library reconnects.
    Down(String),
}

/// State shared with the connection thread.
struct LinkState {
    connected: AtomicBool,
    /// The sink is being dropped: the thread ends at its next event.
    stopping: AtomicBool,
    last_error: Mutex<String>,
}

impl LinkState {
    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub struct MqttSink {
    name: String,
    box_name: String,
    topic_prefix: String,
    broker: String,
    availability_topic: String,
    ack_timeout: Duration,
    client: Client,
    events: Receiver<LinkEvent>,
    link: Arc<LinkState>,
    thread: Option<JoinHandle<()>>,
}

/// Waits between connection attempts while the broker is unreachable.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Largest packet either way: an alert's JSON is at most 8 KiB.
const MAX_PACKET_BYTES: usize = 64 * 1024;

impl MqttSink {
    /// Checks the settings and reads the files they name (password, certificates) without
    /// connecting: what `vigil check` runs.
    pub fn check(settings: &MqttSettings, box_name: &str, base: &Path) -> Result<(), SinkError> {
        prepare(settings, box_name, base).map(|_| ())
    }

    /// Starts connecting to the broker in the background; the sink accepts alerts once
    /// connected and fails them (the journal keeps them) until then. `base` anchors the
    /// relative paths of the settings (`Path::join` keeps absolute ones as they are).
    pub fn start(settings: &MqttSettings, box_name: &str, base: &Path) -> Result<Self, SinkError> {
        let Prepared {
            options,
            broker,
            availability_topic,
        } = prepare(settings, box_name, base)?;
        let name = settings.name.clone();
        let fail = |detail: String| SinkError {
            sink: name.clone(),
            detail,
        };
        let (client, connection) = Client::new(options, 16);
        let (sender, events) = crossbeam_channel::bounded(64);
        let link = Arc::new(LinkState {
            connected: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_error: Mutex::new("not connected yet".into()),
        });
        let thread = {
            let link = link.clone();
            let client = client.clone();
            let availability_topic = availability_topic.clone();
            let broker = broker.clone();
            std::thread::Builder::new()
                .name(format!("mqtt-{}", settings.name))
                .spawn(move || {
                    drive(
                        connection,
                        &client,
                        &availability_topic,
                        &sender,
                        &link,
                        &broker,
                    )
                })
                .map_err(|err| fail(format!("cannot start its connection thread: {err}")))?
        };
        Ok(Self {
            name,
            box_name: box_name.into(),
            topic_prefix: settings.topic_prefix.clone(),
            broker,
            availability_topic,
            ack_timeout: Duration::from_millis(settings.ack_timeout_ms.max(1)),
            client,
            events,
            link,
            thread: Some(thread),
        })
    }

    /// The topic an alert of this stream and model is published to.
    pub fn topic(&self, alert: &Alert) -> String {
        format!(
            "{}/{}/{}/{}/events",
            self.topic_prefix, self.box_name, alert.stream, alert.model
        )
    }

    fn error(&self, detail: String) -> SinkError {
        SinkError {
            sink: self.name.clone(),
            detail,
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    fn publish_acknowledged(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        if !self.link.connected.load(Ordering::Acquire) {
            return Err(self.error(format!(
                "not connected to {}: {}",
                self.broker,
                self.link.last_error()
            )));
        }
        // Acknowledgements of publishes that timed out earlier are of no use now.
        while self.events.try_recv().is_ok() {}
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|err| self.error(format!("cannot queue the publish: {err}")))?;
        let deadline = Instant::now() + timeout;
        let mut packet_id = None;
        loop {
            let event = self
                .events
                .recv_deadline(deadline)
                .map_err(|err| match err {
                    RecvTimeoutError::Timeout => self.error(format!(
                        "{} did not acknowledge within {} ms",
                        self.broker,
                        timeout.as_millis()
                    )),
                    RecvTimeoutError::Disconnected => {
                        self.error("the connection thread stopped".into())
                    }
                })?;
            match (event, packet_id) {
                (LinkEvent::Sent(id), None) => packet_id = Some(id),
                (LinkEvent::Acked(id), Some(sent)) if id == sent => return Ok(()),
                (LinkEvent::Down(why), _) => {
                    return Err(self.error(format!("connection to {} lost: {why}", self.broker)));
                }
                _ => {}
            }
        }
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let payload = super::event_body(&self.box_name, alert).map_err(|err| self.error(err))?;
        let topic = self.topic(alert);
        self.publish_acknowledged(&topic, payload, false, self.ack_timeout)
    }
}

impl Drop for MqttSink {
    /// A clean stop: announce `offline` (the broker does not send the Last Will after a
    /// DISCONNECT) and close the connection.
    fn drop(&mut self) {
        let topic = self.availability_topic.clone();
        if let Err(err) =
            self.publish_acknowledged(&topic, b"offline".to_vec(), true, Duration::from_secs(2))
        {
            log::warn!("{err}: the broker will publish the Last Will instead");
        }
        self.link.stopping.store(true, Ordering::Release);
        if self.client.try_disconnect().is_err() {
            log::warn!("mqtt sink {}: cannot request the disconnection", self.name);
        }
        // Connected, the thread ends once the DISCONNECT is sent. Otherwise it may be inside a
        // connection attempt for seconds: it ends at that attempt's failure, unawaited.
        if let Some(thread) = self.thread.take()
            && self.link.connected.load(Ordering::Acquire)
            && thread.join().is_err()
        {
            log::error!("mqtt sink {}: connection thread panicked", self.name);
        }
    }
}

/// Client options, broker address and availability topic from the settings.
fn prepare(settings: &MqttSettings, box_name: &str, base: &Path) -> Result<Prepared, SinkError> {
    let fail = |detail: String| SinkError {
        sink: settings.name.clone(),
        detail,
    };
    for (what, level) in [
        ("box name", box_name),
        ("topic_prefix", &settings.topic_prefix),
    ] {
        if let Some(why) = bad_topic_level(level) {
            return Err(fail(format!("{what} {level:?} {why}")));
        }
    }
    let port = settings
        .port
        .unwrap_or(if settings.tls.is_some() { 8883 } else { 1883 });
    let client_id = settings
        .client_id
        .clone()
        .unwrap_or_else(|| format!("vigil-{box_name}"));
    let availability_topic = format!("{}/{box_name}/availability", settings.topic_prefix);
    let mut options = MqttOptions::new(client_id, settings.host.clone(), port);
    options
        .set_keep_alive(Duration::from_secs(settings.keep_alive_s.max(5)))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(
            &availability_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    match (&settings.username, &settings.password_file) {
        (Some(user), password_file) => {
            let password = match password_file {
                Some(path) => read_password(&base.join(path)).map_err(&fail)?,
                None => String::new(),
            };
            options.set_credentials(user.clone(), password);
        }
        (None, Some(_)) => return Err(fail("password_file without username".into())),
        (None, None) => {}
    }
    if let Some(tls) = &settings.tls {
        let config = rustls_config(tls, base).map_err(&fail)?;
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(config))));
    }
    Ok(Prepared {
        options,
        broker: format!("{}:{port}", settings.host),
        availability_topic,
    })
}

struct Prepared {
    options: MqttOptions,
    broker: String,
    availability_topic: String,
}

/// The connection thread: runs the client's event loop, reconnecting with backoff, and
/// reports sends, acknowledgements and losses.
fn drive(
    mut connection: Connection,
    client: &Client,
    availability_topic: &str,
    events: &Sender<LinkEvent>,
    link: &LinkState,
    broker: &str,
) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let event = match connection.recv() {
            Ok(event) => event,
            // Every client handle is gone: nothing more to do.
            Err(_) => return,
        };
        // The publishing side may have given up on this exchange; a full channel is its
        // business, the sink clears it before its next publish.
        let tell = |event: LinkEvent| {
            let _ = events.try_send(event);
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) if link.stopping.load(Ordering::Acquire) => {
                // Connected just as the sink went away: say goodbye properly.
                let _ = client.try_publish(availability_topic, QoS::AtMostOnce, true, "offline");
                let _ = client.try_disconnect();
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = RECONNECT_MIN;
                link.connected.store(true, Ordering::Release);
                log::info!("mqtt: connected to {broker}");
                // QoS 0: its packet id (0) never mixes with the alerts' acknowledgements, and
                // it is sent again on every connection anyway.
                if let Err(err) =
                    client.try_publish(availability_topic, QoS::AtMostOnce, true, "online")
                {
                    log::warn!("mqtt: cannot announce availability: {err}");
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => tell(LinkEvent::Acked(ack.pkid)),
            Ok(Event::Outgoing(Outgoing::Publish(id))) if id != 0 => tell(LinkEvent::Sent(id)),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                link.connected.store(false, Ordering::Release);
                // Let the library send the DISCONNECT, then stop.
                let _ = connection.recv_timeout(Duration::from_millis(500));
                return;
            }
            Ok(_) => {}
            Err(_) if link.stopping.load(Ordering::Acquire) => return,
            Err(err) => {
                let why = describe(&err);
                let was_connected = link.connected.swap(false, Ordering::AcqRel);
                let mut last_error = link
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if was_connected || *last_error != why {
                    log::warn!("mqtt: {broker}: {why}; alerts wait in the journal");
                }
                *last_error = why.clone();
                drop(last_error);
                tell(LinkEvent::Down(why));
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
    }
}

fn describe(err: &ConnectionError) -> String {
    match err {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?})")
        }
        other => other.to_string(),
    }
}

fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read password_file: {err}: {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// A rustls client configuration on the ring provider: the given CA or the Mozilla roots,
/// and a client certificate when one is set.
pub fn rustls_config(tls: &MqttTls, base: &Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| format!("cannot read PEM certificates: {err}: {}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("no PEM certificate in {}", path.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let ca = base.join(ca);
            for cert in read_certs(&ca)? {
                roots
                    .add(cert)
                    .map_err(|err| format!("unusable CA certificate: {err}: {}", ca.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup: {err}"))?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(&base.join(cert))?;
            let key = base.join(key);
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|err| format!("cannot read the PEM key: {err}: {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("client certificate and key do not match: {err}"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("tls.cert and tls.key go together".into()),
    }
}
