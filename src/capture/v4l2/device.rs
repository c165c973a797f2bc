//! The device layer (feature `v4l`): opening the camera, enumerating and setting its format
//! through the v4l crate's ioctls, and streaming through mmap buffers.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use v4l::buffer::{Flags as BufferFlags, Type as BufferType};
use v4l::capability::Flags as CapabilityFlags;
use v4l::device::Handle;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC};

use super::convert::{Colorimetry, FrameConverter};
use super::negotiate::{
    self, ActualFormat, Choice, FourCc, Fraction, Mode, PixelFormat, Wanted, choose_format,
    verify_format, verify_interval,
};
use super::{V4l2Config, V4l2Error, io_error, open_error, timeval_to_duration};

/// `POLLIN` from poll.h (the same on every Linux architecture); the v4l crate's `poll` takes
/// raw event bits.
const POLLIN: i16 = 0x0001;
/// How long one wait for a frame lasts before checking for interruption.
const POLL_SLICE: Duration = Duration::from_millis(100);
/// Corrupt frames (a USB hiccup, a truncated JPEG) are skipped; this many in a row means the
/// camera is in trouble and is reported, so that the supervisor restarts it.
const MAX_BAD_IN_A_ROW: u32 = 10;

/// One converted frame with its timestamps.
pub(super) struct Captured {
    pub rgb: Vec<u8>,
    pub pts: Duration,
    pub captured_at: SystemTime,
}

/// What a dequeued buffer gave.
enum Dequeued {
    Frame(Captured),
    /// A frame to skip: why, to report if too many follow.
    Bad(V4l2Error),
}

/// An open, streaming camera.
pub(super) struct Live {
    device: PathBuf,
    /// `'static` because the mmap arena lives as long as the stream, which owns it and keeps
    /// the file descriptor open through its handle.
    stream: MmapStream<'static>,
    handle: Arc<Handle>,
    converter: FrameConverter,
    choice: Choice,
    /// The size the driver actually set.
    camera_size: (u32, u32),
    fps: Option<f64>,
    timeout: Duration,
    /// Set once the first buffer has been dequeued: from then on the stream is on and buffers
    /// are queued, so waiting with poll(2) is possible.
    streaming: bool,
    bad_in_a_row: u32,
    last_sequence: Option<u32>,
}

impl Live {
    /// Opens the device, negotiates a format and rate for `config`, and maps the buffers.
    /// Streaming starts with the first [`Live::next_frame`].
    pub(super) fn open(config: &V4l2Config) -> Result<Self, V4l2Error> {
        let path = config.device.as_path();
        let device = Device::with_path(path).map_err(|err| open_error(err, path))?;
        // The v4l crate unwraps the driver and card names as UTF-8; the kernel truncates them
        // to 32 bytes, which can split a multi-byte character of a camera's USB product name.
        // Such a camera is still usable: only the capability check is skipped.
        let caps = match catch_unwind(AssertUnwindSafe(|| device.query_caps())) {
            Ok(caps) => Some(caps.map_err(|err| io_error("VIDIOC_QUERYCAP", err, path))?),
            Err(_) => {
                log::warn!(
                    "{}: capability names are not UTF-8; not checking capabilities",
                    path.display()
                );
                None
            }
        };
        let (driver, card) = match caps {
            Some(caps) => {
                let wanted_caps = CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING;
                if !caps.capabilities.contains(wanted_caps) {
                    return Err(V4l2Error::NotCapture {
                        driver: caps.driver,
                        card: caps.card,
                        device: path.to_path_buf(),
                    });
                }
                (caps.driver, caps.card)
            }
            None => (String::from("?"), String::from("?")),
        };
        let wanted = config.wanted();
        let modes = enumerate_modes(&device, &wanted, path)?;
        log::debug!(
            "{}: {} ({}) offers {}",
            path.display(),
            card,
            driver,
            negotiate::describe_modes(&modes)
        );
        let choice = choose_format(&modes, &wanted, path)?;

        let requested = Format::new(choice.width, choice.height, FourCC::new(&choice.fourcc.0));
        let set = device
            .set_format(&requested)
            .map_err(|err| io_error("VIDIOC_S_FMT", err, path))?;
        let actual = ActualFormat {
            fourcc: FourCc(set.fourcc.repr),
            width: set.width,
            height: set.height,
            bytesperline: set.stride,
            sizeimage: set.size,
        };
        let negotiated = verify_format(&choice, &wanted, &actual, path)?;
        let colorimetry = Colorimetry::from_v4l2(set.colorspace as u32, set.quantization as u32);
        let fps = set_frame_interval(&device, &choice, &wanted, path);

        let converter = FrameConverter::new(
            negotiated.format,
            negotiated.width,
            negotiated.height,
            negotiated.stride,
            colorimetry,
            config.width,
            config.height,
        )?;
        let mut stream =
            MmapStream::with_buffers(&device, BufferType::VideoCapture, config.buffers)
                .map_err(|err| io_error("VIDIOC_REQBUFS", err, path))?;
        // The first frame waits inside the v4l crate's own poll (the stream is not on before
        // that call, so there is nothing to poll for yet); cameras can take a second or two to
        // deliver it while auto-exposure settles.
        stream.set_timeout(config.stall_timeout());
        let live = Self {
            device: path.to_path_buf(),
            handle: stream.handle(),
            stream,
            converter,
            choice,
            camera_size: (negotiated.width, negotiated.height),
            fps,
            timeout: config.stall_timeout(),
            streaming: false,
            bad_in_a_row: 0,
            last_sequence: None,
        };
        log::info!(
            "{}: {} ({}): capturing {}, {} to {}x{}",
            path.display(),
            card,
            driver,
            live.describe(),
            match negotiated.format {
                PixelFormat::Yuyv => format!("{:?} {:?}", colorimetry.matrix, colorimetry.range),
                PixelFormat::Mjpeg => "JPEG".to_string(),
            },
            config.width,
            config.height
        );
        Ok(live)
    }

    pub(super) fn out_size(&self) -> (u32, u32) {
        self.converter.out_size()
    }

    /// What is being captured, as negotiated with the driver.
    pub(super) fn describe(&self) -> String {
        let rate = match self.fps {
            Some(fps) => format!("{} fps", negotiate::format_fps(fps)),
            None => "the driver's rate".to_string(),
        };
        format!(
            "{} {}x{} at {rate}",
            self.choice.fourcc, self.camera_size.0, self.camera_size.1
        )
    }

    /// Waits for the next good frame. `Ok(None)` once `interrupted` is set. Corrupt frames are
    /// skipped up to [`MAX_BAD_IN_A_ROW`]; a vanished device, a stall or a failed ioctl is an
    /// error after which the stream must be closed and reopened.
    pub(super) fn next_frame(
        &mut self,
        interrupted: &AtomicBool,
    ) -> Result<Option<Captured>, V4l2Error> {
        loop {
            if interrupted.load(Ordering::SeqCst) {
                return Ok(None);
            }
            if self.streaming && !self.wait_readable(interrupted)? {
                return Ok(None);
            }
            match self.dequeue()? {
                Dequeued::Frame(frame) => {
                    self.bad_in_a_row = 0;
                    return Ok(Some(frame));
                }
                Dequeued::Bad(err) => {
                    self.bad_in_a_row += 1;
                    if self.bad_in_a_row >= MAX_BAD_IN_A_ROW {
                        return Err(V4l2Error::BadFrames {
                            count: self.bad_in_a_row,
                            last: Box::new(err),
                            device: self.device.clone(),
                        });
                    }
                    log::warn!("{}: skipping a frame: {err}", self.device.display());
                }
            }
        }
    }

    /// Polls in short slices until a buffer is ready (true), `interrupted` is set (false), or
    /// the stall timeout passes (error). A ready poll also reports a device in error or gone;
    /// the dequeue that follows then fails with the reason.
    fn wait_readable(&self, interrupted: &AtomicBool) -> Result<bool, V4l2Error> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if interrupted.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(V4l2Error::Timeout {
                    after: self.timeout,
                    device: self.device.clone(),
                });
            }
            let slice = (deadline - now).min(POLL_SLICE);
            let slice_ms = i32::try_from(slice.as_millis()).unwrap_or(i32::MAX).max(1);
            match self.handle.poll(POLLIN, slice_ms) {
                Ok(0) => {}
                Ok(_) => return Ok(true),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(io_error("poll", err, &self.device)),
            }
        }
    }

    /// Gives the previous buffer back to the driver, takes the next filled one and converts it.
    fn dequeue(&mut self) -> Result<Dequeued, V4l2Error> {
        let Self {
            stream,
            converter,
            device,
            timeout,
            last_sequence,
            streaming,
            ..
        } = self;
        let (buffer, meta) = CaptureStream::next(stream).map_err(|err| {
            if err.kind() == io::ErrorKind::TimedOut {
                V4l2Error::Timeout {
                    after: *timeout,
                    device: device.clone(),
                }
            } else {
                io_error("VIDIOC_QBUF/VIDIOC_DQBUF", err, device)
            }
        })?;
        let captured_at = SystemTime::now();
        *streaming = true;

        if let Some(last) = *last_sequence {
            let missed = meta.sequence.wrapping_sub(last).wrapping_sub(1);
            if missed > 0 && missed < u32::MAX / 2 {
                log::debug!(
                    "{}: driver dropped {missed} frame(s) before {}",
                    device.display(),
                    meta.sequence
                );
            }
        }
        *last_sequence = Some(meta.sequence);
        if meta.flags.contains(BufferFlags::ERROR) {
            return Ok(Dequeued::Bad(V4l2Error::CorruptFrame {
                sequence: meta.sequence,
            }));
        }
        let used = (meta.bytesused as usize).min(buffer.len());
        let mut rgb = vec![0; converter.out_len()];
        if let Err(err) = converter.convert(&buffer[..used], &mut rgb) {
            return Ok(Dequeued::Bad(err));
        }
        let pts = timeval_to_duration(meta.timestamp.sec, meta.timestamp.usec);
        Ok(Dequeued::Frame(Captured {
            rgb,
            pts,
            captured_at,
        }))
    }

    /// Stops streaming and releases the buffers and the device.
    pub(super) fn close(self) {
        let Self {
            mut stream, device, ..
        } = self;
        if let Err(err) = stream.stop() {
            log::debug!("{}: VIDIOC_STREAMOFF: {err}", device.display());
        }
        // The v4l crate panics in Drop when STREAMOFF or freeing the buffers fails for a reason
        // other than ENODEV; a release that fails must not take the capture thread down.
        if catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err() {
            log::warn!("{}: releasing the capture buffers failed", device.display());
        }
    }
}

/// Lists every format, size and interval the device offers. Stepwise and continuous ranges
/// become the few sizes and intervals that matter for `wanted`.
fn enumerate_modes(device: &Device, wanted: &Wanted, path: &Path) -> Result<Vec<Mode>, V4l2Error> {
    let formats = device
        .enum_formats()
        .map_err(|err| io_error("VIDIOC_ENUM_FMT", err, path))?;
    let mut modes = Vec::new();
    for format in formats {
        let fourcc = FourCc(format.fourcc.repr);
        let sizes = match device.enum_framesizes(format.fourcc) {
            Ok(sizes) => sizes,
            Err(err) => match io_error("VIDIOC_ENUM_FRAMESIZES", err, path) {
                vanished @ V4l2Error::Vanished { .. } => return Err(vanished),
                err => {
                    log::warn!("{}: no frame sizes for {fourcc}: {err}", path.display());
                    continue;
                }
            },
        };
        let mut dims = Vec::new();
        for size in sizes {
            match size.size {
                FrameSizeEnum::Discrete(d) => dims.push((d.width, d.height)),
                FrameSizeEnum::Stepwise(s) => dims.extend(negotiate::stepwise_sizes(
                    (s.min_width, s.min_height),
                    (s.max_width, s.max_height),
                    (s.step_width, s.step_height),
                    (wanted.width, wanted.height),
                )),
            }
        }
        for (width, height) in dims {
            // A driver that cannot list intervals leaves the rate unknown, not the size unusable.
            let intervals = match device.enum_frameintervals(format.fourcc, width, height) {
                Ok(list) => list
                    .into_iter()
                    .flat_map(|interval| match interval.interval {
                        FrameIntervalEnum::Discrete(f) => {
                            vec![Fraction::new(f.numerator, f.denominator)]
                        }
                        FrameIntervalEnum::Stepwise(s) => negotiate::stepwise_intervals(
                            Fraction::new(s.min.numerator, s.min.denominator),
                            Fraction::new(s.max.numerator, s.max.denominator),
                            wanted.fps,
                        ),
                    })
                    .collect(),
                Err(err) => {
                    log::debug!(
                        "{}: no frame intervals for {fourcc} {width}x{height}: {err}",
                        path.display()
                    );
                    Vec::new()
                }
            };
            modes.push(Mode {
                fourcc,
                width,
                height,
                intervals,
            });
        }
    }
    Ok(modes)
}

/// Asks for the chosen frame interval and reports the rate the driver settled on. Failing to
/// set it only costs a warning: the driver's default rate still delivers frames.
fn set_frame_interval(
    device: &Device,
    choice: &Choice,
    wanted: &Wanted,
    path: &Path,
) -> Option<f64> {
    let current = || {
        device
            .params()
            .ok()
            .map(|p| Fraction::new(p.interval.numerator, p.interval.denominator))
    };
    let Some(interval) = choice.interval else {
        return verify_interval(None, current(), wanted.fps, path);
    };
    let params = Parameters::new(v4l::Fraction::new(interval.numerator, interval.denominator));
    match device.set_params(&params) {
        Ok(set) => verify_interval(
            Some(interval),
            Some(Fraction::new(
                set.interval.numerator,
                set.interval.denominator,
            )),
            wanted.fps,
            path,
        ),
        Err(err) => {
            log::warn!(
                "{}: cannot set the frame interval to {interval}: {err}",
                path.display()
            );
            verify_interval(None, current(), wanted.fps, path)
        }
    }
}
