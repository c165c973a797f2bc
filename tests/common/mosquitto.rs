//! A real Mosquitto broker per test (the Debian package), on a free loopback port, and a
//! subscriber that records everything published under `vigil/#`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS, Transport};

pub struct Mosquitto {
    pub port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

fn mosquitto_binary() -> PathBuf {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("mosquitto is not installed: `apt-get install mosquitto` (scripts/deps.sh does)")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Mosquitto {
    /// A broker that keeps persistent sessions across its own restarts. `listener` is the
    /// configuration of its one listener after the `listener <port> 127.0.0.1` line.
    pub fn start(dir: &Path, listener: &str) -> Self {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{listener}\n\
                 persistence true\npersistence_location {}/\n\
                 log_dest file {}/mosquitto.log\nlog_type all\nuser root\n",
                dir.display(),
                dir.display()
            ),
        )
        .unwrap();
        let mut broker = Self {
            port,
            dir: dir.into(),
            conf,
            child: None,
        };
        broker.resume();
        broker
    }

    /// Starts the broker again on the same port with its saved sessions.
    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A clean stop (SIGTERM): the broker saves its sessions and queued messages.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// A persistent-session QoS 1 subscriber: what the broker queued for it while it was away,
/// or while the broker was restarting, still reaches it.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    client: Client,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    pub fn connect(port: u16, id: &str, transport: Option<Transport>) -> Self {
        Self::connect_as(port, id, transport, None)
    }

    pub fn connect_as(
        port: u16,
        id: &str,
        transport: Option<Transport>,
        credentials: Option<(&str, &str)>,
    ) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 16, 1 << 16);
        if let Some(transport) = transport {
            options.set_transport(transport);
        }
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let (client, mut connection) = Client::new(options, 64);
        client.subscribe("vigil/#", QoS::AtLeastOnce).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let got = got.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match connection.recv_timeout(Duration::from_millis(100)) {
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            got.lock().unwrap().push(Received {
                                topic: p.topic.clone(),
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                            })
                        }
                        Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                        Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
                        Err(rumqttc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
        };
        Self {
            got,
            stop,
            client,
            thread: Some(thread),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The alert events received so far (not availability), as JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .filter(|r| r.topic.ends_with("/events"))
            .map(Received::json)
            .collect()
    }

    /// The availability payloads received so far, in order.
    pub fn availability(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.topic.ends_with("/availability"))
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect()
    }

    /// Waits until `done` holds for what was received, or panics after `within`.
    pub fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&Subscriber) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {} messages",
                self.received().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
