//! A training run's folder: its config, metrics, checkpoints, plots and exported models.
//!
//! ```text
//! runs/toy-20261126-181500/
//!   config.json          the hyper-parameters and data path (what `--resume` reads back)
//!   metrics.csv          one row per epoch
//!   loss.png, roc.png, pr.png
//!   checkpoint/model.bpk, checkpoint/optimizer.bpk, checkpoint/state.json
//!   model.bpk            the final weights
//!   model.onnx, model-int8.onnx, manifest.toml
//! ```
//!
//! Checkpoints are written to a temporary folder and renamed into place, so a run killed while
//! saving keeps its previous checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a run folder could not be read or written; each case names the path.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path} already holds a run; pass --resume {path} to continue it, or another --out")]
    Exists { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a run lives.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

/// The progress a checkpoint records.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Samples seen so far (for samples/s over a resumed run).
    pub samples_seen: u64,
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auroc: f64,
    pub samples_per_second: f64,
    pub learning_rate: f64,
}

const CSV_HEADER: &str = "epoch,train_loss,val_loss,val_auroc,samples_per_s,learning_rate";

impl RunDir {
    /// A new run folder; refuses one that already holds a run.
    pub fn create(path: &Path) -> Result<Self, RunError> {
        if path.join("config.json").exists() {
            return Err(RunError::Exists {
                path: path.to_path_buf(),
            });
        }
        std::fs::create_dir_all(path).map_err(io_error(path))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// An existing run folder (for resume, export, quantize, eval).
    pub fn open(path: &Path) -> Result<Self, RunError> {
        let config = path.join("config.json");
        if !config.is_file() {
            return Err(RunError::Io {
                path: config,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a run folder (no config.json)",
                ),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// `runs/<family>-<UTC timestamp>` under the current folder.
    pub fn default_path(family: &str) -> PathBuf {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from("runs").join(format!("{family}-{seconds}"))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunError> {
        let path = self.file(name);
        let text = serde_json::to_string_pretty(value).map_err(|err| RunError::Format {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        write_atomically(&path, text.as_bytes())
    }

    pub fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, RunError> {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        serde_json::from_str(&text).map_err(|err| RunError::Format {
            path,
            reason: err.to_string(),
        })
    }

    /// Appends one row to `metrics.csv`, writing the header first when the file is new.
    pub fn append_metrics(&self, row: &EpochMetrics) -> Result<(), RunError> {
        let path = self.file("metrics.csv");
        let new = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut text = String::new();
        if new {
            text.push_str(CSV_HEADER);
            text.push('\n');
        }
        text.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.1},{:e}\n",
            row.epoch,
            row.train_loss,
            row.val_loss,
            row.val_auroc,
            row.samples_per_second,
            row.learning_rate
        ));
        file.write_all(text.as_bytes()).map_err(io_error(&path))
    }

    /// Reads `metrics.csv` back (for plots, and to trim rows past a resumed checkpoint).
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>, RunError> {
        let path = self.file("metrics.csv");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let mut rows = Vec::new();
        for (line_number, line) in text.lines().enumerate().skip(1) {
            let bad = |reason: String| RunError::Format {
                path: path.clone(),
                reason: format!("line {}: {reason}", line_number + 1),
            };
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != 6 {
                return Err(bad(format!("{} fields, expected 6", fields.len())));
            }
            let number = |i: usize| {
                fields[i]
                    .trim()
                    .parse::<f64>()
                    .map_err(|err| bad(format!("field {}: {err}", i + 1)))
            };
            rows.push(EpochMetrics {
                epoch: fields[0]
                    .parse()
                    .map_err(|err| bad(format!("epoch: {err}")))?,
                train_loss: number(1)?,
                val_loss: number(2)?,
                val_auroc: number(3)?,
                samples_per_second: number(4)?,
                learning_rate: number(5)?,
            });
        }
        Ok(rows)
    }

    /// Rewrites `metrics.csv` with only the rows up to `epochs_done` (a resumed run repeats the
    /// epochs after its checkpoint).
    pub fn truncate_metrics(&self, epochs_done: usize) -> Result<(), RunError> {
        let rows: Vec<EpochMetrics> = self
            .read_metrics()?
            .into_iter()
            .filter(|row| row.epoch <= epochs_done)
            .collect();
        let path = self.file("metrics.csv");
        if path.exists() {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        rows.iter().try_for_each(|row| self.append_metrics(row))
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.file("checkpoint")
    }

    /// A scratch folder for the next checkpoint; [`Self::commit_checkpoint`] swaps it in.
    pub fn begin_checkpoint(&self) -> Result<PathBuf, RunError> {
        let staging = self.file("checkpoint.partial");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(io_error(&staging))?;
        Ok(staging)
    }

    pub fn commit_checkpoint(&self, state: CheckpointState) -> Result<(), RunError> {
        let staging = self.file("checkpoint.partial");
        let text = serde_json::to_string_pretty(&state).map_err(|err| RunError::Format {
            path: staging.join("state.json"),
            reason: err.to_string(),
        })?;
        write_atomically(&staging.join("state.json"), text.as_bytes())?;
        let current = self.checkpoint_dir();
        let previous = self.file("checkpoint.previous");
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(io_error(&previous))?;
        }
        if current.exists() {
            std::fs::rename(&current, &previous).map_err(io_error(&current))?;
        }
        std::fs::rename(&staging, &current).map_err(io_error(&staging))?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(io_error(&previous))?;
        }
        Ok(())
    }

    /// The last complete checkpoint's state, if any.
    pub fn checkpoint_state(&self) -> Result<Option<CheckpointState>, RunError> {
        let path = self.checkpoint_dir().join("state.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| RunError::Format {
                path,
                reason: err.to_string(),
            })
    }
}

/// Writes `bytes` next to `path` and renames over it: readers never see half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.5 / epoch as f64,
            val_loss: 0.6,
            val_auroc: 0.9,
            samples_per_second: 1234.5,
            learning_rate: 1e-3,
        }
    }

    #[test]
    fn metrics_round_trip_and_truncate() -> Result<(), RunError> {
        let dir = tempfile::tempdir().map_err(io_error(Path::new("tempdir")))?;
        let run = RunDir::create(&dir.path().join("run"))?;
        for epoch in 1..=4 {
            run.append_metrics(&row(epoch))?;
        }
        assert_eq!(run.read_metrics()?.len(), 4);
        run.truncate_metrics(2)?;
        let rows = run.read_metrics()?;
        assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);
        assert!((rows[1].train_loss - 0.25).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn checkpoints_swap_in_whole_and_runs_are_not_overwritten() -> Result<(), RunError> {
        let dir = tempfile::tempdir().map_err(io_error(Path::new("tempdir")))?;
        let run = RunDir::create(&dir.path().join("run"))?;
        run.write_json("config.json", &serde_json::json!({"epochs": 3}))?;
        assert!(matches!(
            RunDir::create(&run.path),
            Err(RunError::Exists { .. })
        ));
        assert_eq!(run.checkpoint_state()?, None);
        for epochs_done in 1..=2 {
            let staging = run.begin_checkpoint()?;
            std::fs::write(staging.join("model.bpk"), [epochs_done as u8])
                .map_err(io_error(&staging))?;
            run.commit_checkpoint(CheckpointState {
                epochs_done,
                samples_seen: 10 * epochs_done as u64,
            })?;
        }
        let state = run.checkpoint_state()?;
        assert_eq!(state.map(|s| s.epochs_done), Some(2));
        let model =
            std::fs::read(run.checkpoint_dir().join("model.bpk")).map_err(io_error(&run.path))?;
        assert_eq!(model, [2]);
        // A half-written checkpoint does not replace the good one.
        let staging = run.begin_checkpoint()?;
        std::fs::write(staging.join("model.bpk"), [9]).map_err(io_error(&staging))?;
        assert_eq!(run.checkpoint_state()?.map(|s| s.epochs_done), Some(2));
        Ok(())
    }

    #[test]
    fn a_corrupt_metrics_file_names_the_line() -> Result<(), RunError> {
        let dir = tempfile::tempdir().map_err(io_error(Path::new("tempdir")))?;
        let run = RunDir::create(dir.path())?;
        std::fs::write(
            run.file("metrics.csv"),
            format!("{CSV_HEADER}\n1,0.5,x,0.9,10,0.001\n"),
        )
        .map_err(io_error(&run.path))?;
        let err = run.read_metrics().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("metrics.csv") && e.contains("line 2")));
        Ok(())
    }
}
