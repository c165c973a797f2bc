//! Alerts as HTTP POSTs, for users without a broker.
//!
//! Each alert record is one POST of the same JSON body as the MQTT events
//! (`{"type":…,"box":…,"alert":{…}}`). A 2xx answer acknowledges it; anything else (another
//! status, a refused connection, a timeout) fails the delivery, the alert stays in the journal
//! and the bus retries it, and everything after it, with exponential backoff. Delivery is at
//! least once: receivers deduplicate on `alert.id`.

use std::io::Read;
use std::time::Duration;

use super::{Sink, SinkError};
use crate::alert::Alert;
pub use crate::sinks::settings::WebhookSettings;

pub struct Webhook {
    name: String,
    box_name: String,
    url: String,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
}

/// How much of an error answer's body goes into the log.
const ERROR_BODY_BYTES: u64 = 200;

impl Webhook {
    pub fn new(settings: &WebhookSettings, box_name: &str) -> Result<Self, SinkError> {
        let fail = |detail: String| SinkError {
            sink: settings.name.clone(),
            detail,
        };
        let uri: ureq::http::Uri = settings
            .url
            .parse()
            .map_err(|err| fail(format!("url {:?}: {err}", settings.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(fail(format!(
                "url {:?} is not an http:// or https:// address",
                settings.url
            )));
        }
        for (header, value) in &settings.headers {
            ureq::http::HeaderName::try_from(header.as_str())
                .map_err(|_| fail(format!("header name {header:?} is not valid")))?;
            ureq::http::HeaderValue::try_from(value.as_str())
                .map_err(|_| fail(format!("header {header} has an invalid value")))?;
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(settings.timeout_ms.max(1))))
            // A 4xx or 5xx is an answer to log, not a transport error.
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Self {
            name: settings.name.clone(),
            box_name: box_name.into(),
            url: settings.url.clone(),
            headers: settings
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            agent,
        })
    }

    fn error(&self, detail: String) -> SinkError {
        SinkError {
            sink: self.name.clone(),
            detail,
        }
    }
}

impl Sink for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let body = super::event_body(&self.box_name, alert).map_err(|e| self.error(e))?;
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json");
        for (header, value) in &self.headers {
            request = request.header(header, value);
        }
        let mut response = request
            .send(&body[..])
            .map_err(|err| self.error(format!("POST {}: {err}", self.url)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut text = String::new();
        // The body only explains the refusal; failing to read it changes nothing.
        let _ = response
            .body_mut()
            .as_reader()
            .take(ERROR_BODY_BYTES)
            .read_to_string(&mut text);
        Err(self.error(format!(
            "POST {} answered {status}: {}",
            self.url,
            text.trim()
        )))
    }
}
