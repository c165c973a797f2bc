//! Push-broom hyperspectral sources: one image line (all across-track pixels × all bands) per
//! sample, as a line-scan sensor delivers them.
//!
//! Two sources: [`SceneReplay`] plays a scene file (ENVI, `.npy`, `.mat`) line by line at a set
//! line rate — the way to test a payload on the ground — and [`LineStream`] reads raw lines from
//! a file, a FIFO, standard input or a TCP socket, as a live sensor's driver writes them.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{CaptureError, Sample, Stamp};
use crate::hsi::MapInfo;
use crate::hsi::envi::{ByteOrder, DataType, Interleave, decode_to_bip};

/// One push-broom line: `width` pixels × `bands` values, band-interleaved by pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralLine {
    pub stamp: Stamp,
    /// Line number along track, from 0 at the start of the scene or stream.
    pub index: u64,
    pub width: usize,
    pub bands: usize,
    pub values: Vec<f32>,
    /// The scene's geographic placement, when its header has one.
    pub map_info: Option<Arc<MapInfo>>,
}

/// Plays a scene file as a push-broom stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneReplayConfig {
    /// `.hdr` (or the ENVI data file), `.npy` (H×W×B) or `.mat` (`data` H×W×B).
    pub path: PathBuf,
    /// Lines per second; 0 plays as fast as the pipeline takes them.
    #[serde(default)]
    pub line_rate_hz: f64,
}

pub struct SceneReplay {
    config: SceneReplayConfig,
    scene: Option<crate::hsi::Cube>,
    map_info: Option<Arc<MapInfo>>,
    /// Survives restarts: a replay resumes where it failed instead of repeating lines.
    next_line: usize,
    started: Option<(Instant, SystemTime, usize)>,
}

impl SceneReplay {
    pub fn new(config: SceneReplayConfig) -> Result<SceneReplay, CaptureError> {
        if !(config.line_rate_hz >= 0.0 && config.line_rate_hz.is_finite()) {
            return Err(CaptureError::Unsupported {
                what: "line rate",
                detail: format!(
                    "{} Hz (give a rate ≥ 0; 0 = as fast as possible)",
                    config.line_rate_hz
                ),
            });
        }
        Ok(SceneReplay {
            config,
            scene: None,
            map_info: None,
            next_line: 0,
            started: None,
        })
    }
}

fn io_error(path: &std::path::Path, err: impl std::fmt::Display) -> CaptureError {
    CaptureError::Io {
        path: path.display().to_string(),
        err: std::io::Error::other(err.to_string()),
    }
}

impl super::Source for SceneReplay {
    fn start(&mut self) -> Result<(), CaptureError> {
        if self.scene.is_none() {
            let scene = crate::hsi::read_scene(&self.config.path)
                .map_err(|e| io_error(&self.config.path, e))?;
            scene
                .cube
                .check_finite()
                .map_err(|e| io_error(&self.config.path, e))?;
            self.map_info = scene.cube.map_info.clone().map(Arc::new);
            self.scene = Some(scene.cube);
        }
        self.started = Some((Instant::now(), SystemTime::now(), self.next_line));
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        let (Some(cube), Some((t0, wall0, first))) = (&self.scene, self.started) else {
            return Err(CaptureError::Unsupported {
                what: "reading before start",
                detail: self.describe(),
            });
        };
        if self.next_line >= cube.rows() {
            return Ok(None);
        }
        let line = self.next_line;
        let rate = self.config.line_rate_hz;
        // A paced replay stamps each line when it was due; an unpaced one when it is read.
        let (pts, captured_at) = if rate > 0.0 {
            let due = Duration::from_secs_f64((line - first) as f64 / rate);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            (Duration::from_secs_f64(line as f64 / rate), wall0 + due)
        } else {
            (t0.elapsed(), SystemTime::now())
        };
        self.next_line += 1;
        Ok(Some(Sample::Spectral(SpectralLine {
            stamp: Stamp {
                pts,
                captured_at,
                seq: line as u64,
            },
            index: line as u64,
            width: cube.cols(),
            bands: cube.bands(),
            values: cube.line(line).to_vec(),
            map_info: self.map_info.clone(),
        })))
    }

    fn stop(&mut self) {
        self.started = None;
    }

    fn describe(&self) -> String {
        format!(
            "scene replay {} at {} lines/s",
            self.config.path.display(),
            self.config.line_rate_hz
        )
    }
}

/// How a sensor writes one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    U8,
    U16le,
    U16be,
    I16le,
    I16be,
    F32le,
    F32be,
}

impl SampleFormat {
    /// The ENVI data type and byte order this format is, so lines decode with ENVI's decoder.
    fn layout(self) -> (DataType, ByteOrder) {
        match self {
            SampleFormat::U8 => (DataType::U8, ByteOrder::Little),
            SampleFormat::U16le => (DataType::U16, ByteOrder::Little),
            SampleFormat::U16be => (DataType::U16, ByteOrder::Big),
            SampleFormat::I16le => (DataType::I16, ByteOrder::Little),
            SampleFormat::I16be => (DataType::I16, ByteOrder::Big),
            SampleFormat::F32le => (DataType::F32, ByteOrder::Little),
            SampleFormat::F32be => (DataType::F32, ByteOrder::Big),
        }
    }

    fn size(self) -> usize {
        self.layout().0.size()
    }
}

/// Order of values within one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineInterleave {
    /// Band by band: all pixels of band 0, then band 1 … (what push-broom sensors emit).
    Bil,
    /// Pixel by pixel: all bands of pixel 0, then pixel 1 …
    Bip,
}

/// A live line stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineStreamConfig {
    /// `-` for standard input, `tcp://host:port` to connect to a sensor, else a file or FIFO.
    pub input: String,
    /// Across-track pixels per line.
    pub width: usize,
    pub bands: usize,
    pub format: SampleFormat,
    pub interleave: LineInterleave,
}

pub struct LineStream {
    config: LineStreamConfig,
    reader: Option<Box<dyn Read + Send>>,
    bytes: Vec<u8>,
    /// Survives reconnects, so line numbers keep counting along track.
    next_line: u64,
    t0: Instant,
    /// A regular file is resumed at the next whole line after a restart and ends at a torn
    /// last line; a FIFO or socket is reopened and read on.
    regular_file: bool,
    /// Set once a regular file has ended, so that a restart does not read it again.
    finished: bool,
}

impl LineStream {
    pub fn new(config: LineStreamConfig) -> Result<LineStream, CaptureError> {
        let line_bytes = config
            .width
            .checked_mul(config.bands)
            .and_then(|n| n.checked_mul(config.format.size()))
            .filter(|&n| n > 0)
            .ok_or_else(|| CaptureError::Unsupported {
                what: "line shape",
                detail: format!("{} pixels × {} bands", config.width, config.bands),
            })?;
        Ok(LineStream {
            config,
            reader: None,
            bytes: vec![0; line_bytes],
            next_line: 0,
            t0: Instant::now(),
            regular_file: false,
            finished: false,
        })
    }
}

impl super::Source for LineStream {
    fn start(&mut self) -> Result<(), CaptureError> {
        let input = &self.config.input;
        let io = |err: std::io::Error| CaptureError::Io {
            path: input.clone(),
            err,
        };
        self.reader = Some(if input == "-" {
            Box::new(std::io::stdin())
        } else if let Some(address) = input.strip_prefix("tcp://") {
            Box::new(std::net::TcpStream::connect(address).map_err(io)?)
        } else {
            let mut file = std::fs::File::open(input).map_err(io)?;
            self.regular_file = file.metadata().map_err(io)?.is_file();
            if self.regular_file {
                use std::io::Seek;
                let resume = self.next_line * self.bytes.len() as u64;
                file.seek(std::io::SeekFrom::Start(resume)).map_err(io)?;
            }
            Box::new(file)
        });
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(CaptureError::Unsupported {
                what: "reading before start",
                detail: self.config.input.clone(),
            });
        };
        // Fill exactly one line; a stream that ends mid-line lost part of a line, which is an
        // error (the whole lines before it were delivered), not a quiet end.
        if self.finished {
            return Ok(None);
        }
        let mut filled = 0;
        while filled < self.bytes.len() {
            match reader.read(&mut self.bytes[filled..]) {
                Ok(0) if filled == 0 => {
                    self.finished = self.regular_file;
                    return Ok(None);
                }
                Ok(0) => {
                    let torn = CaptureError::Malformed {
                        source_name: self.config.input.clone(),
                        detail: format!(
                            "line {} ended after {filled} of {} bytes",
                            self.next_line,
                            self.bytes.len()
                        ),
                    };
                    if self.regular_file {
                        // Rereading a file cannot complete its last line: report it once
                        // and end, keeping every whole line already delivered.
                        log::error!("{torn}; the file ends there");
                        self.finished = true;
                        return Ok(None);
                    }
                    return Err(torn);
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(CaptureError::Io {
                        path: self.config.input.clone(),
                        err,
                    });
                }
            }
        }
        let (width, bands) = (self.config.width, self.config.bands);
        let (data_type, byte_order) = self.config.format.layout();
        let interleave = match self.config.interleave {
            LineInterleave::Bil => Interleave::Bil,
            LineInterleave::Bip => Interleave::Bip,
        };
        // One line of a BIL or BIP file: ENVI's decoder with `lines = 1`.
        let values = decode_to_bip(
            data_type,
            byte_order,
            interleave,
            (1, width, bands),
            &self.bytes,
        );
        let index = self.next_line;
        self.next_line += 1;
        Ok(Some(Sample::Spectral(SpectralLine {
            stamp: Stamp {
                pts: self.t0.elapsed(),
                captured_at: SystemTime::now(),
                seq: index,
            },
            index,
            width,
            bands,
            values,
            map_info: None,
        })))
    }

    fn stop(&mut self) {
        self.reader = None;
    }

    fn describe(&self) -> String {
        format!(
            "push-broom lines from {} ({} px × {} bands, {:?} {:?})",
            self.config.input,
            self.config.width,
            self.config.bands,
            self.config.format,
            self.config.interleave
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Source;

    fn config(input: &str, interleave: LineInterleave) -> LineStreamConfig {
        LineStreamConfig {
            input: input.into(),
            width: 3,
            bands: 2,
            format: SampleFormat::U16be,
            interleave,
        }
    }

    #[test]
    fn bil_lines_become_bip_and_a_torn_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.raw");
        // Line 0 in BIL: band 0 = 1 2 3, band 1 = 10 20 30; then half a line.
        let values: [u16; 9] = [1, 2, 3, 10, 20, 30, 4, 5, 6];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let mut source =
            LineStream::new(config(path.to_str().unwrap(), LineInterleave::Bil)).unwrap();
        source.start().unwrap();
        let Some(Sample::Spectral(line)) = source.next().unwrap() else {
            panic!("expected a line");
        };
        assert_eq!(line.values, [1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);
        // A file's torn last line ends the stream (it is logged), and a restart resumes after
        // the last whole line rather than replaying the file.
        assert!(source.next().unwrap().is_none());
        source.stop();
        source.start().unwrap();
        assert!(source.next().unwrap().is_none());
    }

    #[test]
    fn a_torn_line_on_a_pipe_is_an_error_naming_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("sensor");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            // One whole 12-byte line and 6 bytes of the next.
            std::fs::write(writer_path, [0u8; 18]).unwrap();
        });
        let mut source =
            LineStream::new(config(fifo.to_str().unwrap(), LineInterleave::Bip)).unwrap();
        source.start().unwrap();
        assert!(source.next().unwrap().is_some());
        let torn = source.next().unwrap_err().to_string();
        assert!(torn.contains("line 1 ended after 6 of 12 bytes"), "{torn}");
        writer.join().unwrap();
    }

    #[test]
    fn a_restarted_file_resumes_at_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.raw");
        let bytes: Vec<u8> = (0..36u16).flat_map(|v| v.to_be_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let mut source =
            LineStream::new(config(path.to_str().unwrap(), LineInterleave::Bip)).unwrap();
        source.start().unwrap();
        assert!(source.next().unwrap().is_some());
        source.stop();
        source.start().unwrap();
        let Some(Sample::Spectral(line)) = source.next().unwrap() else {
            panic!("expected line 1");
        };
        assert_eq!((line.index, line.values[0]), (1, 6.0));
    }

    #[test]
    fn an_exact_stream_ends_cleanly_and_a_missing_input_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.raw");
        std::fs::write(&path, vec![0u8; 24]).unwrap();
        let mut source =
            LineStream::new(config(path.to_str().unwrap(), LineInterleave::Bip)).unwrap();
        source.start().unwrap();
        assert!(source.next().unwrap().is_some());
        assert!(source.next().unwrap().is_some());
        assert!(source.next().unwrap().is_none());
        let mut missing =
            LineStream::new(config("/nonexistent/sensor", LineInterleave::Bip)).unwrap();
        assert!(
            missing
                .start()
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/sensor")
        );
        assert!(
            LineStream::new(LineStreamConfig {
                width: 0,
                ..config("-", LineInterleave::Bip)
            })
            .is_err()
        );
    }
}
