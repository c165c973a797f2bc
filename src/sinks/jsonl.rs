//! Alerts as JSON lines, to stdout or appended to a file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Sink, SinkError};
use crate::alert::Alert;

enum Target {
    Stdout,
    File { path: PathBuf, out: BufWriter<File> },
}

/// One JSON object per line, flushed per alert so a reader tailing it sees alerts at once.
pub struct JsonLines {
    name: String,
    target: Target,
}

impl JsonLines {
    pub fn stdout(name: &str) -> Self {
        Self {
            name: name.into(),
            target: Target::Stdout,
        }
    }

    pub fn file(name: &str, path: &Path) -> Result<Self, SinkError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| SinkError {
                sink: name.into(),
                detail: format!("cannot create the folder: {err}: {}", parent.display()),
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|err| SinkError {
                sink: name.into(),
                detail: format!("cannot open for appending: {err}: {}", path.display()),
            })?;
        Ok(Self {
            name: name.into(),
            target: Target::File {
                path: path.into(),
                out: BufWriter::new(file),
            },
        })
    }
}

impl Sink for JsonLines {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let fail = |detail: String| SinkError {
            sink: self.name.clone(),
            detail,
        };
        let line = serde_json::to_string(alert).map_err(|err| fail(err.to_string()))?;
        match &mut self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").and_then(|()| out.flush())
            }
            Target::File { path, out } => writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|err| {
                    std::io::Error::new(err.kind(), format!("{err}: {}", path.display()))
                }),
        }
        .map_err(|err| fail(err.to_string()))
    }
}
