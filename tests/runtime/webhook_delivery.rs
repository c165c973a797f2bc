//! The webhook sink against a small HTTP server in the test: refused answers are retried with
//! backoff until the endpoint acknowledges, in order, and nothing is lost or skipped.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil::metrics::Metrics;
use vigil::sinks::{AlertBus, Sink, Webhook, WebhookSettings};

#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    authorization: Option<String>,
    body: serde_json::Value,
    answered: u16,
}

/// Serves HTTP/1.1 POSTs on a free port, answering 503 to the first `refuse` of them and 204
/// after that; records every request.
fn endpoint(refuse: usize) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut authorization = None;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if lower.starts_with("authorization:") {
                    authorization = Some(line[14..].trim().to_string());
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut log = log.lock().unwrap();
            let answered = if log.len() < refuse { 503 } else { 204 };
            log.push(Request {
                at: Instant::now(),
                authorization,
                body: serde_json::from_slice(&body).unwrap(),
                answered,
            });
            let reply = if answered == 503 {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\nconnection: close\r\n\r\nrestarted"
            } else {
                "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
            };
            let mut stream = stream;
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, requests)
}

fn settings(url: &str) -> WebhookSettings {
    toml::from_str(&format!(
        "name = \"hook\"\nurl = \"{url}\"\ntimeout_ms = 2000\nheaders = {{ Authorization = \"Bearer t0k\" }}"
    ))
    .unwrap()
}

#[test]
fn refused_posts_are_retried_with_backoff_and_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = endpoint(3);
    let sink = Webhook::new(&settings(&url), "box1").unwrap();
    let bus = AlertBus::start(dir.path(), vec![Box::new(sink)], 8, &Metrics::new()).unwrap();
    let sender = bus.sender();
    for n in 0..5 {
        sender.send(common::alert(n)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.answered == 204)
        .count()
        < 5
    {
        assert!(Instant::now() < deadline, "{:#?}", requests.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(sender);
    bus.close().unwrap();

    let requests = requests.lock().unwrap().clone();
    // Three refusals of the first alert, each after a longer pause than the one before.
    let refused: Vec<&Request> = requests.iter().filter(|r| r.answered == 503).collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|r| r.body["alert"]["event"] == 0));
    let pauses: Vec<Duration> = requests
        .windows(2)
        .take(3)
        .map(|w| w[1].at - w[0].at)
        .collect();
    assert!(pauses[0] >= Duration::from_millis(450), "{pauses:?}");
    assert!(pauses[1] > pauses[0] && pauses[2] > pauses[1], "{pauses:?}");
    let accepted: Vec<u64> = requests
        .iter()
        .filter(|r| r.answered == 204)
        .map(|r| r.body["alert"]["event"].as_u64().unwrap())
        .collect();
    assert_eq!(accepted, vec![0, 1, 2, 3, 4]);
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer t0k"))
    );
    assert_eq!(requests[0].body["type"], "new");
    assert_eq!(requests[0].body["box"], "box1");
    println!(
        "webhook: 5 alerts, {} POSTs, pauses before retries {pauses:?}",
        requests.len()
    );
}

#[test]
fn an_unreachable_or_refusing_endpoint_fails_the_delivery_with_its_reason() {
    // Nothing listens on a port just released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/alerts");
    let mut sink = Webhook::new(&settings(&url), "box1").unwrap();
    let err = sink.deliver(&common::alert(1)).unwrap_err().to_string();
    assert!(err.contains(&url), "{err}");

    let (url, _) = endpoint(usize::MAX);
    let mut sink = Webhook::new(&settings(&url), "box1").unwrap();
    let err = sink.deliver(&common::alert(1)).unwrap_err().to_string();
    assert!(err.contains("503") && err.contains("restarted"), "{err}");
}

#[test]
fn bad_webhook_settings_are_refused() {
    for (url, expect) in [
        ("ftp://example.com/x", "not an http"),
        ("not a url", "url"),
        ("/relative", "not an http"),
    ] {
        let err = Webhook::new(&settings(url), "b").err().unwrap().to_string();
        assert!(err.contains(expect), "{url}: {err}");
    }
    let mut bad_header = settings("http://127.0.0.1:1/");
    bad_header.headers.insert("Bad Header".into(), "x".into());
    let err = Webhook::new(&bad_header, "b").err().unwrap().to_string();
    assert!(err.contains("Bad Header"), "{err}");
}
