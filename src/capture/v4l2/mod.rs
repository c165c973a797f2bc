//! Direct V4L2 capture: a camera read through the kernel API, without GStreamer.
//!
//! [`V4l2Source`] opens the device, enumerates what it offers, negotiates a format
//! ([`negotiate`]), streams through mmap buffers and converts each frame to RGB at the model's
//! size ([`convert`]). Frames are stamped with the kernel's buffer timestamp (pts) and the
//! wall-clock time at dequeue.
//!
//! The device layer needs the `v4l` feature (the v4l crate, whose bindings need libclang to
//! build); conversion, negotiation and the error type do not, so builds without the feature
//! still parse profiles that name a V4L2 camera and report clearly that it is not built in.

pub mod convert;
pub mod negotiate;

#[cfg(feature = "v4l")]
mod device;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::capture::{CaptureError, Sample, Source};
#[cfg(feature = "v4l")]
use crate::capture::{Stamp, VideoFrame};

pub use convert::{Colorimetry, FrameConverter, Quantization, Resizer, YcbcrMatrix};
pub use negotiate::{Choice, FourCc, Fraction, Mode, PixelFormat, Wanted};

/// Why V4L2 capture failed: opening, negotiating, streaming, or converting one frame. The facts
/// are fields; where a device is involved its path comes last in the message.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    #[error("invalid V4L2 configuration: {detail}: {device}")]
    Config { detail: String, device: PathBuf },
    #[error("no such video device: {device}")]
    NotFound { device: PathBuf },
    #[error("permission denied opening (is the user in the `video` group?): {device}")]
    PermissionDenied { device: PathBuf },
    #[error("cannot open ({err}): {device}")]
    Open { err: io::Error, device: PathBuf },
    #[error(
        "not a video capture device with streaming I/O (driver {driver}, card {card}): {device}"
    )]
    NotCapture {
        driver: String,
        card: String,
        device: PathBuf,
    },
    #[error("device busy during {op} (is another program capturing?): {device}")]
    Busy { op: &'static str, device: PathBuf },
    #[error("device vanished (ENODEV) during {op}: {device}")]
    Vanished { op: &'static str, device: PathBuf },
    #[error("{op} failed ({err}): {device}")]
    Ioctl {
        op: &'static str,
        err: io::Error,
        device: PathBuf,
    },
    #[error("no frame within {after:?}: {device}")]
    Timeout { after: Duration, device: PathBuf },
    #[error("read before start: {device}")]
    NotStarted { device: PathBuf },
    #[error("{count} unusable frames in a row, the last: {last}: {device}")]
    BadFrames {
        count: u32,
        last: Box<V4l2Error>,
        device: PathBuf,
    },
    #[error("driver flagged frame {sequence} as corrupt")]
    CorruptFrame { sequence: u32 },

    #[error(
        "no YUYV or MJPEG format of at least {width}x{height} (wanted at {fps} fps); the device offers {offered}: {device}"
    )]
    NoUsableFormat {
        width: u32,
        height: u32,
        fps: u32,
        offered: String,
        device: PathBuf,
    },
    #[error("asked for pixel format {requested}, driver set {actual}: {device}")]
    FormatChanged {
        requested: FourCc,
        actual: FourCc,
        device: PathBuf,
    },
    #[error(
        "driver set {width}x{height}, smaller than the wanted {min_width}x{min_height}: {device}"
    )]
    SizeTooSmall {
        width: u32,
        height: u32,
        min_width: u32,
        min_height: u32,
        device: PathBuf,
    },
    #[error(
        "driver reports {stride} bytes per line, fewer than {min} for a {width}-pixel YUYV row: {device}"
    )]
    BadStride {
        stride: usize,
        min: usize,
        width: u32,
        device: PathBuf,
    },

    #[error("frame size {width}x{height} is empty")]
    ZeroSize { width: u32, height: u32 },
    #[error("frame size {width}x{height} is too large to address")]
    TooLarge { width: u32, height: u32 },
    #[error("YUYV needs an even width, got {width}")]
    OddWidth { width: u32 },
    #[error("stride of {stride} bytes is shorter than a row of {min}")]
    StrideTooSmall { stride: usize, min: usize },
    #[error("{what} holds {len} bytes, needs at least {needed}")]
    BufferTooShort {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    #[error("{what} holds {len} bytes, must hold exactly {needed}")]
    BufferSize {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    #[error("invalid JPEG: {detail}")]
    JpegInvalid { detail: String },
    #[error("JPEG truncated after {len} bytes")]
    JpegTruncated { len: usize },
    #[error("unsupported JPEG: {detail}")]
    JpegUnsupported { detail: String },
    #[error("JPEG is {width}x{height}, expected {expected_width}x{expected_height}")]
    JpegSizeMismatch {
        width: u32,
        height: u32,
        expected_width: u32,
        expected_height: u32,
    },
}

/// Linux errno values the capture loop tells apart (the same on every architecture).
const ENODEV: i32 = 19;
const EBUSY: i32 = 16;

/// Classifies a failed system call on the device: a vanished or busy device gets its own
/// variant, so that logs say what happened rather than an errno.
pub fn io_error(op: &'static str, err: io::Error, device: &Path) -> V4l2Error {
    let device = device.to_path_buf();
    match err.raw_os_error() {
        Some(ENODEV) => V4l2Error::Vanished { op, device },
        Some(EBUSY) => V4l2Error::Busy { op, device },
        _ => V4l2Error::Ioctl { op, err, device },
    }
}

/// Classifies a failed `open(2)` of the device node.
pub fn open_error(err: io::Error, device: &Path) -> V4l2Error {
    match err.kind() {
        io::ErrorKind::NotFound => V4l2Error::NotFound {
            device: device.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => V4l2Error::PermissionDenied {
            device: device.to_path_buf(),
        },
        _ if err.raw_os_error() == Some(ENODEV) => V4l2Error::Vanished {
            op: "open",
            device: device.to_path_buf(),
        },
        _ if err.raw_os_error() == Some(EBUSY) => V4l2Error::Busy {
            op: "open",
            device: device.to_path_buf(),
        },
        _ => V4l2Error::Open {
            err,
            device: device.to_path_buf(),
        },
    }
}

/// A kernel `struct timeval` (the buffer timestamp, CLOCK_MONOTONIC for most drivers) as a
/// duration; a negative or malformed one, which a driver without timestamps may leave, is 0.
/// Generic because `time_t` is 32 bits on some 32-bit targets.
pub fn timeval_to_duration(sec: impl TryInto<u64>, usec: impl TryInto<u32>) -> Duration {
    match (sec.try_into(), usec.try_into()) {
        (Ok(sec), Ok(usec)) if usec < 1_000_000 => Duration::new(sec, usec * 1_000),
        _ => Duration::ZERO,
    }
}

/// A V4L2 camera as a profile declares it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Config {
    /// The device node, e.g. `/dev/video0` or a stable `/dev/v4l/by-id/...` link.
    pub device: PathBuf,
    /// The size frames are delivered at (the model's input); the camera captures at the
    /// smallest size that covers it and frames are scaled down.
    pub width: u32,
    pub height: u32,
    /// The wanted frame rate.
    pub fps: u32,
    /// Kernel buffers to stream through (2 at least: one is read while the driver fills another).
    #[serde(default = "default_buffers")]
    pub buffers: u32,
    /// A running camera that delivers nothing for this long is treated as failed.
    #[serde(default = "default_stall_ms")]
    pub stall_timeout_ms: u64,
}

fn default_buffers() -> u32 {
    4
}

fn default_stall_ms() -> u64 {
    5_000
}

/// Limits that keep a typo in a profile from asking the driver for nonsense.
const MAX_SIDE: u32 = 16_384;
const MAX_FPS: u32 = 1_000;
const MAX_BUFFERS: u32 = 32;
const MAX_STALL_MS: u64 = 600_000;

impl V4l2Config {
    pub fn new(device: impl Into<PathBuf>, width: u32, height: u32, fps: u32) -> Self {
        Self {
            device: device.into(),
            width,
            height,
            fps,
            buffers: default_buffers(),
            stall_timeout_ms: default_stall_ms(),
        }
    }

    pub fn validate(&self) -> Result<(), V4l2Error> {
        let problem = if self.width == 0
            || self.height == 0
            || self.width > MAX_SIDE
            || self.height > MAX_SIDE
        {
            Some(format!(
                "size {}x{} is outside 1..={MAX_SIDE}",
                self.width, self.height
            ))
        } else if self.fps == 0 || self.fps > MAX_FPS {
            Some(format!("fps {} is outside 1..={MAX_FPS}", self.fps))
        } else if !(2..=MAX_BUFFERS).contains(&self.buffers) {
            Some(format!(
                "buffers {} is outside 2..={MAX_BUFFERS}",
                self.buffers
            ))
        } else if self.stall_timeout_ms == 0 || self.stall_timeout_ms > MAX_STALL_MS {
            Some(format!(
                "stall_timeout_ms {} is outside 1..={MAX_STALL_MS}",
                self.stall_timeout_ms
            ))
        } else {
            None
        };
        match problem {
            Some(detail) => Err(V4l2Error::Config {
                detail,
                device: self.device.clone(),
            }),
            None => Ok(()),
        }
    }

    pub fn wanted(&self) -> Wanted {
        Wanted {
            width: self.width,
            height: self.height,
            fps: self.fps,
        }
    }

    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }
}

/// Captures RGB frames from a V4L2 camera; restartable after an error.
pub struct V4l2Source {
    config: V4l2Config,
    /// Counts delivered frames across restarts.
    #[cfg_attr(not(feature = "v4l"), allow(dead_code))]
    next_seq: u64,
    interrupted: Arc<AtomicBool>,
    #[cfg(feature = "v4l")]
    live: Option<device::Live>,
}

impl V4l2Source {
    pub fn new(config: V4l2Config) -> Self {
        Self {
            config,
            next_seq: 0,
            interrupted: Arc::new(AtomicBool::new(false)),
            #[cfg(feature = "v4l")]
            live: None,
        }
    }

    pub fn config(&self) -> &V4l2Config {
        &self.config
    }

    fn not_started(&self) -> CaptureError {
        V4l2Error::NotStarted {
            device: self.config.device.clone(),
        }
        .into()
    }

    fn base_description(&self) -> String {
        let c = &self.config;
        format!(
            "v4l2 {} {}x{}@{}",
            c.device.display(),
            c.width,
            c.height,
            c.fps
        )
    }
}

#[cfg(feature = "v4l")]
impl V4l2Source {
    fn open(&mut self) -> Result<(), CaptureError> {
        self.live = Some(device::Live::open(&self.config)?);
        Ok(())
    }

    fn read(&mut self) -> Result<Option<Sample>, CaptureError> {
        let Some(live) = self.live.as_mut() else {
            return Err(self.not_started());
        };
        let Some(frame) = live.next_frame(&self.interrupted)? else {
            return Ok(None);
        };
        let (width, height) = live.out_size();
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(Some(Sample::Video(VideoFrame {
            stamp: Stamp {
                pts: frame.pts,
                captured_at: frame.captured_at,
                seq,
            },
            width,
            height,
            rgb: frame.rgb,
        })))
    }

    fn close(&mut self) {
        if let Some(live) = self.live.take() {
            live.close();
        }
    }

    fn description(&self) -> String {
        match &self.live {
            Some(live) => format!(
                "{} (capturing {})",
                self.base_description(),
                live.describe()
            ),
            None => self.base_description(),
        }
    }
}

/// Without the device layer the source exists (profiles still parse) but cannot start.
#[cfg(not(feature = "v4l"))]
impl V4l2Source {
    fn open(&mut self) -> Result<(), CaptureError> {
        Err(CaptureError::Unsupported {
            what: "V4L2 capture",
            detail: format!(
                "vigil was built without the `v4l` feature ({})",
                self.config.device.display()
            ),
        })
    }

    fn read(&mut self) -> Result<Option<Sample>, CaptureError> {
        Err(self.not_started())
    }

    fn close(&mut self) {}

    fn description(&self) -> String {
        self.base_description()
    }
}

impl Source for V4l2Source {
    fn start(&mut self) -> Result<(), CaptureError> {
        self.stop();
        self.interrupted.store(false, Ordering::SeqCst);
        self.config.validate()?;
        self.open()
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        self.read()
    }

    fn stop(&mut self) {
        self.close();
    }

    fn describe(&self) -> String {
        self.description()
    }

    fn interrupter(&self) -> Option<Arc<AtomicBool>> {
        Some(self.interrupted.clone())
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml_with_defaults() {
        let config: V4l2Config = toml::from_str(
            r#"
            device = "/dev/video0"
            width = 224
            height = 224
            fps = 30
            "#,
        )
        .unwrap();
        assert_eq!(config, V4l2Config::new("/dev/video0", 224, 224, 30));
        assert_eq!((config.buffers, config.stall_timeout_ms), (4, 5_000));
        config.validate().unwrap();
        assert_eq!(
            config.wanted(),
            Wanted {
                width: 224,
                height: 224,
                fps: 30
            }
        );
    }

    #[test]
    fn config_rejects_unknown_fields_and_nonsense() {
        let err = toml::from_str::<V4l2Config>(
            "device = \"/dev/video0\"\nwidth = 1\nheight = 1\nfps = 1\nformat = \"YUYV\"\n",
        );
        assert!(err.is_err());
        let base = V4l2Config::new("/dev/video3", 640, 480, 30);
        for bad in [
            V4l2Config {
                width: 0,
                ..base.clone()
            },
            V4l2Config {
                height: 20_000,
                ..base.clone()
            },
            V4l2Config {
                fps: 0,
                ..base.clone()
            },
            V4l2Config {
                buffers: 1,
                ..base.clone()
            },
            V4l2Config {
                buffers: 33,
                ..base.clone()
            },
            V4l2Config {
                stall_timeout_ms: 0,
                ..base.clone()
            },
        ] {
            let err = bad.validate().unwrap_err();
            assert!(matches!(err, V4l2Error::Config { .. }), "{err}");
            assert!(err.to_string().ends_with("/dev/video3"), "{err}");
        }
    }

    #[test]
    fn errno_classification() {
        let dev = Path::new("/dev/video1");
        let err = io_error("VIDIOC_DQBUF", io::Error::from_raw_os_error(ENODEV), dev);
        assert!(
            matches!(
                err,
                V4l2Error::Vanished {
                    op: "VIDIOC_DQBUF",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "device vanished (ENODEV) during VIDIOC_DQBUF: /dev/video1"
        );
        let err = io_error("VIDIOC_STREAMON", io::Error::from_raw_os_error(EBUSY), dev);
        assert!(matches!(err, V4l2Error::Busy { .. }), "{err}");
        let err = io_error("VIDIOC_S_FMT", io::Error::from_raw_os_error(22), dev);
        assert!(
            matches!(
                err,
                V4l2Error::Ioctl {
                    op: "VIDIOC_S_FMT",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with("/dev/video1"), "{err}");

        let err = open_error(io::Error::from_raw_os_error(2), dev);
        assert!(matches!(err, V4l2Error::NotFound { .. }), "{err}");
        let err = open_error(io::Error::from_raw_os_error(13), dev);
        assert!(matches!(err, V4l2Error::PermissionDenied { .. }), "{err}");
        let err = open_error(io::Error::from_raw_os_error(ENODEV), dev);
        assert!(
            matches!(err, V4l2Error::Vanished { op: "open", .. }),
            "{err}"
        );
    }

    #[test]
    fn kernel_timestamps() {
        assert_eq!(
            timeval_to_duration(12i64, 345_678i64),
            Duration::new(12, 345_678_000)
        );
        assert_eq!(timeval_to_duration(12i32, 5i32), Duration::new(12, 5_000));
        assert_eq!(timeval_to_duration(-1i64, 0i64), Duration::ZERO);
        assert_eq!(timeval_to_duration(1i64, 1_000_000i64), Duration::ZERO);
        assert_eq!(timeval_to_duration(1i64, -5i64), Duration::ZERO);
    }

    #[test]
    fn source_is_send_and_reports_before_start() {
        fn assert_send<T: Send>() {}
        assert_send::<V4l2Source>();
        let mut source = V4l2Source::new(V4l2Config::new("/dev/video9", 224, 224, 30));
        let err = source.next().unwrap_err();
        assert!(
            matches!(err, CaptureError::V4l2(V4l2Error::NotStarted { .. })),
            "{err}"
        );
        assert_eq!(source.describe(), "v4l2 /dev/video9 224x224@30");
        assert!(source.interrupter().is_some());
        source.stop();
    }

    #[test]
    fn start_rejects_a_bad_config_before_touching_the_device() {
        let mut source = V4l2Source::new(V4l2Config {
            fps: 0,
            ..V4l2Config::new("/dev/video9", 224, 224, 30)
        });
        let err = source.start().unwrap_err();
        assert!(
            matches!(err, CaptureError::V4l2(V4l2Error::Config { .. })),
            "{err}"
        );
    }

    #[cfg(feature = "v4l")]
    #[test]
    fn start_on_a_missing_device_is_not_found() {
        let mut source = V4l2Source::new(V4l2Config::new("/nonexistent/video42", 224, 224, 30));
        let err = source.start().unwrap_err();
        assert!(
            matches!(err, CaptureError::V4l2(V4l2Error::NotFound { .. })),
            "{err}"
        );
        assert!(err.to_string().ends_with("/nonexistent/video42"), "{err}");
    }

    #[cfg(feature = "v4l")]
    #[test]
    fn start_on_something_that_is_not_a_camera_fails_clearly() {
        // /dev/null opens fine but answers no V4L2 ioctl.
        let mut source = V4l2Source::new(V4l2Config::new("/dev/null", 224, 224, 30));
        let err = source.start().unwrap_err();
        assert!(
            matches!(
                err,
                CaptureError::V4l2(V4l2Error::Ioctl {
                    op: "VIDIOC_QUERYCAP",
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with("/dev/null"), "{err}");
        // And it can be started again (the supervisor does), failing the same way.
        assert!(source.start().is_err());
    }

    #[cfg(not(feature = "v4l"))]
    #[test]
    fn start_without_the_feature_is_unsupported() {
        let mut source = V4l2Source::new(V4l2Config::new("/dev/video0", 224, 224, 30));
        let err = source.start().unwrap_err();
        assert!(matches!(err, CaptureError::Unsupported { .. }), "{err}");
    }
}
