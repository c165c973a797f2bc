//! Choosing a capture format from what a device offers, and checking what the driver set.
//!
//! Pure logic over plain data, so that it is tested without a camera: the device layer
//! enumerates formats, sizes and frame intervals into [`Mode`]s, [`choose_format`] picks one,
//! and after `VIDIOC_S_FMT` [`verify_format`] checks the driver's answer, because drivers
//! silently adjust what they are asked for.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;

use super::V4l2Error;

/// A V4L2 pixel format code, four ASCII bytes in memory order (`b"YUYV"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const YUYV: Self = Self(*b"YUYV");
    pub const MJPG: Self = Self(*b"MJPG");
    /// Older drivers (and some USB bridges) name Motion-JPEG `JPEG`; it decodes the same way.
    pub const JPEG: Self = Self(*b"JPEG");

    /// From the `u32` of the kernel structures (little-endian, as `v4l2_fourcc()` builds it).
    pub fn from_u32(code: u32) -> Self {
        Self(code.to_le_bytes())
    }

    pub fn to_u32(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            // Codes shorter than four letters are padded with spaces ("Y16 ").
            let text: String = self.0.iter().map(|&b| char::from(b)).collect();
            f.write_str(text.trim_end())
        } else {
            write!(f, "{:#010x}", self.to_u32())
        }
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// How a captured buffer is turned into RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed 4:2:2 Y'CbCr, uncompressed: cheap to convert, heavy on USB bandwidth.
    Yuyv,
    /// One JPEG per frame: light on the bus, costs a decode.
    Mjpeg,
}

impl PixelFormat {
    /// The format vigil decodes for a fourcc, if any.
    pub fn from_fourcc(fourcc: FourCc) -> Option<Self> {
        match fourcc {
            FourCc::YUYV => Some(PixelFormat::Yuyv),
            FourCc::MJPG | FourCc::JPEG => Some(PixelFormat::Mjpeg),
            _ => None,
        }
    }
}

/// A frame interval in seconds per frame (V4L2's `timeperframe`): 1/30 is 30 fps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    pub fn new(numerator: u32, denominator: u32) -> Self {
        Self {
            numerator,
            denominator,
        }
    }

    /// Frames per second, `None` for a degenerate fraction a driver might report.
    pub fn fps(self) -> Option<f64> {
        (self.numerator != 0 && self.denominator != 0)
            .then(|| f64::from(self.denominator) / f64::from(self.numerator))
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fps() {
            Some(fps) => write!(f, "{} fps", format_fps(fps)),
            None => write!(f, "{}/{} s", self.numerator, self.denominator),
        }
    }
}

/// A rate for messages: "30", "29.97".
pub fn format_fps(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.005 {
        format!("{}", fps.round())
    } else {
        format!("{fps:.2}")
    }
}

/// One format at one frame size, with the frame intervals the device offers there. A device
/// that cannot enumerate intervals gives an empty list: its rate is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    pub intervals: Vec<Fraction>,
}

impl Mode {
    fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The highest frame rate offered.
    fn max_fps(&self) -> Option<f64> {
        self.intervals
            .iter()
            .filter_map(|i| i.fps())
            .max_by(f64::total_cmp)
    }

    /// The interval closest to `fps` that still reaches it: the slowest of those fast enough.
    fn meeting_interval(&self, fps: u32) -> Option<Fraction> {
        self.intervals
            .iter()
            .filter_map(|&i| Some((i, i.fps()?)))
            .filter(|&(_, offered)| meets(offered, fps))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// The fastest interval, for when none reaches the wanted rate.
    fn fastest_interval(&self) -> Option<Fraction> {
        self.intervals
            .iter()
            .filter_map(|&i| Some((i, i.fps()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.fourcc, self.width, self.height)?;
        let rates: Vec<String> = self
            .intervals
            .iter()
            .filter_map(|i| i.fps())
            .map(format_fps)
            .collect();
        if rates.is_empty() {
            write!(f, " (rate unknown)")
        } else {
            write!(f, " ({} fps)", rates.join("/"))
        }
    }
}

/// Everything a device offers, for error messages and logs.
pub fn describe_modes(modes: &[Mode]) -> String {
    if modes.is_empty() {
        "no formats".into()
    } else {
        modes
            .iter()
            .map(Mode::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the pipeline asks of the camera: the model's input size and a frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Relative slack when comparing frame rates: NTSC-derived 29.97 fps counts as 30.
const FPS_TOLERANCE: f64 = 0.01;

fn meets(offered: f64, wanted: u32) -> bool {
    offered >= f64::from(wanted) * (1.0 - FPS_TOLERANCE)
}

/// The format to ask the driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub fourcc: FourCc,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// `None` when the device does not enumerate its rates: the driver's default stays.
    pub interval: Option<Fraction>,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.fourcc, self.width, self.height)?;
        match self.interval {
            Some(interval) => write!(f, " at {interval}"),
            None => write!(f, " at the driver's rate"),
        }
    }
}

/// How far a size's aspect ratio is from the wanted one (0 = same shape), on a log scale so
/// that 2:1 and 1:2 are equally far from 1:1.
fn aspect_distance(mode: &Mode, wanted: &Wanted) -> f64 {
    let ratio = |w: u32, h: u32| f64::from(w) / f64::from(h.max(1));
    (ratio(mode.width, mode.height) / ratio(wanted.width, wanted.height))
        .ln()
        .abs()
}

/// Smaller area first (less to transfer, convert and scale down), then the closer aspect ratio
/// (less of the picture stretched).
fn by_size(a: &Mode, b: &Mode, wanted: &Wanted) -> Ordering {
    a.area()
        .cmp(&b.area())
        .then_with(|| aspect_distance(a, wanted).total_cmp(&aspect_distance(b, wanted)))
}

/// Picks the capture format for `wanted` among `modes`.
///
/// Only sizes at least as large as wanted on both axes are considered (frames are scaled
/// down, never up), in formats vigil decodes (YUYV, MJPEG). Then:
/// 1. among the modes that reach the wanted rate, the smallest size (then the closest aspect
///    ratio) in YUYV, since converting it is cheaper than decoding JPEG, unless MJPEG reaches
///    the rate at a strictly smaller size, which is cheaper still to decode than a much larger
///    YUYV frame is to convert and shrink (and aliases less);
/// 2. otherwise MJPEG's smallest such size;
/// 3. if no mode reaches the rate, the fastest one (YUYV first at equal rate, then the
///    smaller size), with a warning.
///
/// The interval chosen is the one closest to the wanted rate among those that reach it (the
/// fastest one in case 3). No usable mode at all is an error listing everything on offer.
pub fn choose_format(modes: &[Mode], wanted: &Wanted, device: &Path) -> Result<Choice, V4l2Error> {
    let usable: Vec<(&Mode, PixelFormat)> = modes
        .iter()
        .filter(|m| m.width >= wanted.width && m.height >= wanted.height)
        .filter_map(|m| Some((m, PixelFormat::from_fourcc(m.fourcc)?)))
        .collect();
    if usable.is_empty() {
        return Err(V4l2Error::NoUsableFormat {
            width: wanted.width,
            height: wanted.height,
            fps: wanted.fps,
            offered: describe_modes(modes),
            device: device.to_path_buf(),
        });
    }
    let choice = |mode: &Mode, format, interval| Choice {
        fourcc: mode.fourcc,
        format,
        width: mode.width,
        height: mode.height,
        interval,
    };
    let best_meeting = |format: PixelFormat| {
        usable
            .iter()
            .filter(|(_, f)| *f == format)
            .filter_map(|&(m, _)| Some((m, m.meeting_interval(wanted.fps)?)))
            .min_by(|a, b| by_size(a.0, b.0, wanted))
    };
    match (
        best_meeting(PixelFormat::Yuyv),
        best_meeting(PixelFormat::Mjpeg),
    ) {
        (Some((yuyv, _)), Some((mjpeg, interval))) if mjpeg.area() < yuyv.area() => {
            log::debug!(
                "{}: MJPEG {}x{} preferred over YUYV {}x{} for being smaller",
                device.display(),
                mjpeg.width,
                mjpeg.height,
                yuyv.width,
                yuyv.height
            );
            return Ok(choice(mjpeg, PixelFormat::Mjpeg, Some(interval)));
        }
        (Some((yuyv, interval)), _) => return Ok(choice(yuyv, PixelFormat::Yuyv, Some(interval))),
        (None, Some((mjpeg, interval))) => {
            return Ok(choice(mjpeg, PixelFormat::Mjpeg, Some(interval)));
        }
        (None, None) => {}
    }
    let fallback = usable
        .iter()
        .min_by(|(a, fa), (b, fb)| {
            // Faster first (an unknown rate last), then YUYV, then smaller.
            let fps = |m: &Mode| m.max_fps().unwrap_or(-1.0);
            fps(b)
                .total_cmp(&fps(a))
                .then_with(|| (*fa == PixelFormat::Mjpeg).cmp(&(*fb == PixelFormat::Mjpeg)))
                .then_with(|| by_size(a, b, wanted))
        })
        .map(|&(m, format)| choice(m, format, m.fastest_interval()));
    let Some(fallback) = fallback else {
        // Unreachable: `usable` is not empty. Kept as an error rather than a panic.
        return Err(V4l2Error::NoUsableFormat {
            width: wanted.width,
            height: wanted.height,
            fps: wanted.fps,
            offered: describe_modes(modes),
            device: device.to_path_buf(),
        });
    };
    log::warn!(
        "{}: no format reaches {} fps at {}x{} or larger; using {fallback} (device offers {})",
        device.display(),
        wanted.fps,
        wanted.width,
        wanted.height,
        describe_modes(modes)
    );
    Ok(fallback)
}

/// The sizes to enumerate for a stepwise or continuous frame-size range: the smallest
/// step-aligned size that covers the wanted one, or the largest size when none does (so that
/// the error message shows how large the device goes). A zero step counts as 1.
pub fn stepwise_sizes(
    min: (u32, u32),
    max: (u32, u32),
    step: (u32, u32),
    wanted: (u32, u32),
) -> Vec<(u32, u32)> {
    fn cover(min: u32, max: u32, step: u32, want: u32) -> Option<u32> {
        if want <= min {
            return (min <= max).then_some(min);
        }
        let steps = (want - min).div_ceil(step.max(1));
        let size = min.checked_add(steps.checked_mul(step.max(1))?)?;
        (size <= max).then_some(size)
    }
    match (
        cover(min.0, max.0, step.0, wanted.0),
        cover(min.1, max.1, step.1, wanted.1),
    ) {
        (Some(width), Some(height)) => vec![(width, height)],
        _ => vec![max],
    }
}

/// Intervals to consider from a stepwise or continuous range (`min` is the shortest interval,
/// i.e. the fastest rate): both ends, and exactly the wanted rate when it lies within (the
/// driver rounds it to its step).
pub fn stepwise_intervals(min: Fraction, max: Fraction, fps: u32) -> Vec<Fraction> {
    let mut out = vec![min, max];
    let wanted = Fraction::new(1, fps);
    if let (Some(fast), Some(slow), Some(rate)) = (min.fps(), max.fps(), wanted.fps())
        && rate <= fast
        && rate >= slow
    {
        out.push(wanted);
    }
    out
}

/// The format the driver reports after `VIDIOC_S_FMT` (`VIDIOC_G_FMT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActualFormat {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    /// `bytesperline`; 0 for compressed formats.
    pub bytesperline: u32,
    /// `sizeimage`: the largest a frame can be.
    pub sizeimage: u32,
}

/// What capture runs with once the driver has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row for YUYV; 0 for MJPEG.
    pub stride: usize,
}

/// Checks what the driver actually set against what was asked. A different pixel format or a
/// size smaller than wanted is an error (the frames could not be decoded, or would have to be
/// scaled up); another size that still covers the wanted one is accepted with a warning.
pub fn verify_format(
    requested: &Choice,
    wanted: &Wanted,
    actual: &ActualFormat,
    device: &Path,
) -> Result<Negotiated, V4l2Error> {
    if actual.fourcc != requested.fourcc {
        return Err(V4l2Error::FormatChanged {
            requested: requested.fourcc,
            actual: actual.fourcc,
            device: device.to_path_buf(),
        });
    }
    if actual.width < wanted.width || actual.height < wanted.height {
        return Err(V4l2Error::SizeTooSmall {
            width: actual.width,
            height: actual.height,
            min_width: wanted.width,
            min_height: wanted.height,
            device: device.to_path_buf(),
        });
    }
    if (actual.width, actual.height) != (requested.width, requested.height) {
        log::warn!(
            "{}: asked for {}x{}, driver set {}x{}; scaling that to {}x{}",
            device.display(),
            requested.width,
            requested.height,
            actual.width,
            actual.height,
            wanted.width,
            wanted.height
        );
    }
    let stride = match requested.format {
        PixelFormat::Mjpeg => 0,
        PixelFormat::Yuyv => {
            if !actual.width.is_multiple_of(2) {
                return Err(V4l2Error::OddWidth {
                    width: actual.width,
                });
            }
            let packed = actual.width as usize * 2;
            let stride = actual.bytesperline as usize;
            if stride == 0 {
                // The spec makes drivers fill it in for uncompressed formats; assume no padding.
                log::warn!(
                    "{}: driver reports bytesperline 0 for YUYV; assuming {packed}",
                    device.display()
                );
                packed
            } else if stride < packed {
                return Err(V4l2Error::BadStride {
                    stride,
                    min: packed,
                    width: actual.width,
                    device: device.to_path_buf(),
                });
            } else {
                stride
            }
        }
    };
    Ok(Negotiated {
        format: requested.format,
        width: actual.width,
        height: actual.height,
        stride,
    })
}

/// Compares the frame interval the driver accepted with the one asked for; a difference is
/// worth a warning, not a failure (the pipeline copes with any rate). Returns the rate the
/// driver reports, if any.
pub fn verify_interval(
    requested: Option<Fraction>,
    actual: Option<Fraction>,
    wanted_fps: u32,
    device: &Path,
) -> Option<f64> {
    let actual_fps = actual.and_then(Fraction::fps);
    match (requested.and_then(Fraction::fps), actual_fps) {
        (Some(asked), Some(got)) if (asked - got).abs() > asked * FPS_TOLERANCE => log::warn!(
            "{}: asked for {} fps, driver set {} fps",
            device.display(),
            format_fps(asked),
            format_fps(got)
        ),
        (_, Some(got)) if !meets(got, wanted_fps) => log::warn!(
            "{}: capturing at {} fps, below the wanted {wanted_fps}",
            device.display(),
            format_fps(got)
        ),
        _ => {}
    }
    actual_fps
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "/dev/video7";

    fn mode(fourcc: FourCc, width: u32, height: u32, fps: &[u32]) -> Mode {
        Mode {
            fourcc,
            width,
            height,
            intervals: fps.iter().map(|&f| Fraction::new(1, f)).collect(),
        }
    }

    fn want(width: u32, height: u32, fps: u32) -> Wanted {
        Wanted { width, height, fps }
    }

    fn choose(modes: &[Mode], wanted: Wanted) -> Result<Choice, V4l2Error> {
        choose_format(modes, &wanted, Path::new(DEV))
    }

    /// A typical UVC webcam: YUYV is limited by USB 2 bandwidth at large sizes, MJPEG is not.
    fn webcam() -> Vec<Mode> {
        vec![
            mode(FourCc::YUYV, 640, 480, &[30, 15]),
            mode(FourCc::YUYV, 320, 240, &[30, 15]),
            mode(FourCc::YUYV, 1280, 720, &[10, 5]),
            mode(FourCc::MJPG, 640, 480, &[30, 15]),
            mode(FourCc::MJPG, 1280, 720, &[30, 15]),
            mode(FourCc::MJPG, 1920, 1080, &[30, 15]),
        ]
    }

    #[test]
    fn yuyv_only_640x480_at_30() {
        let modes = [mode(FourCc::YUYV, 640, 480, &[30, 15])];
        let c = choose(&modes, want(224, 224, 30)).unwrap();
        assert_eq!(
            (c.fourcc, c.format, c.width, c.height),
            (FourCc::YUYV, PixelFormat::Yuyv, 640, 480)
        );
        assert_eq!(c.interval, Some(Fraction::new(1, 30)));
        // 15 fps is closer to 10 than 30 is, and reaches it.
        assert_eq!(
            choose(&modes, want(224, 224, 10)).unwrap().interval,
            Some(Fraction::new(1, 15))
        );
    }

    #[test]
    fn mjpeg_only() {
        let modes = [
            mode(FourCc::MJPG, 1280, 720, &[30, 60]),
            mode(FourCc::MJPG, 640, 360, &[30]),
        ];
        let c = choose(&modes, want(640, 360, 30)).unwrap();
        assert_eq!(
            (c.format, c.width, c.height, c.interval),
            (PixelFormat::Mjpeg, 640, 360, Some(Fraction::new(1, 30)))
        );
        // 60 fps only at 720p.
        let c = choose(&modes, want(640, 360, 60)).unwrap();
        assert_eq!(
            (c.width, c.height, c.interval),
            (1280, 720, Some(Fraction::new(1, 60)))
        );
        // "JPEG" is the same thing under an older name.
        let c = choose(&[mode(FourCc::JPEG, 640, 480, &[30])], want(640, 480, 30)).unwrap();
        assert_eq!((c.fourcc, c.format), (FourCc::JPEG, PixelFormat::Mjpeg));
    }

    #[test]
    fn both_formats_prefers_yuyv_when_it_reaches_the_rate() {
        let c = choose(&webcam(), want(640, 480, 30)).unwrap();
        assert_eq!((c.format, c.width, c.height), (PixelFormat::Yuyv, 640, 480));
        // The smallest covering size: 320x240 for a 224x224 model.
        let c = choose(&webcam(), want(224, 224, 30)).unwrap();
        assert_eq!((c.format, c.width, c.height), (PixelFormat::Yuyv, 320, 240));
        // YUYV 720p only does 10 fps: MJPEG takes over.
        let c = choose(&webcam(), want(1280, 720, 30)).unwrap();
        assert_eq!(
            (c.format, c.width, c.height),
            (PixelFormat::Mjpeg, 1280, 720)
        );
        // At 10 fps YUYV 720p is fine again.
        let c = choose(&webcam(), want(1280, 720, 10)).unwrap();
        assert_eq!(
            (c.format, c.width, c.height, c.interval),
            (PixelFormat::Yuyv, 1280, 720, Some(Fraction::new(1, 10)))
        );
    }

    #[test]
    fn mjpeg_wins_when_yuyv_only_reaches_the_rate_much_larger() {
        let modes = [
            mode(FourCc::YUYV, 1920, 1080, &[30]),
            mode(FourCc::MJPG, 640, 480, &[30]),
            mode(FourCc::MJPG, 1920, 1080, &[30]),
        ];
        let c = choose(&modes, want(320, 240, 30)).unwrap();
        assert_eq!(
            (c.format, c.width, c.height),
            (PixelFormat::Mjpeg, 640, 480)
        );
    }

    #[test]
    fn closest_aspect_ratio_breaks_ties() {
        let modes = [
            mode(FourCc::YUYV, 640, 480, &[30]),
            mode(FourCc::YUYV, 800, 384, &[30]),
            mode(FourCc::YUYV, 480, 640, &[30]),
        ];
        // 640x480 and 800x384 have the same area; a 16:9 request wants the wider one.
        let c = choose(&modes, want(320, 180, 30)).unwrap();
        assert_eq!((c.width, c.height), (800, 384));
        let c = choose(&modes, want(320, 240, 30)).unwrap();
        assert_eq!((c.width, c.height), (640, 480));
    }

    #[test]
    fn ntsc_rates_count_as_their_round_number() {
        let modes = [Mode {
            fourcc: FourCc::YUYV,
            width: 640,
            height: 480,
            intervals: vec![Fraction::new(1001, 30000)],
        }];
        let c = choose(&modes, want(640, 480, 30)).unwrap();
        assert_eq!(c.interval, Some(Fraction::new(1001, 30000)));
    }

    #[test]
    fn slower_than_wanted_falls_back_to_the_fastest() {
        let modes = [
            mode(FourCc::YUYV, 640, 480, &[15, 7]),
            mode(FourCc::MJPG, 1280, 720, &[20]),
            mode(FourCc::MJPG, 640, 480, &[15]),
        ];
        let c = choose(&modes, want(640, 480, 30)).unwrap();
        assert_eq!(
            (c.format, c.width, c.interval),
            (PixelFormat::Mjpeg, 1280, Some(Fraction::new(1, 20)))
        );
        // Equal rates: YUYV first.
        let c = choose(&modes[..1], want(640, 480, 30)).unwrap();
        assert_eq!(
            (c.format, c.interval),
            (PixelFormat::Yuyv, Some(Fraction::new(1, 15)))
        );
        // A device that cannot enumerate rates is still usable; the driver keeps its own.
        let unknown = [mode(FourCc::YUYV, 640, 480, &[])];
        let c = choose(&unknown, want(640, 480, 30)).unwrap();
        assert_eq!((c.width, c.interval), (640, None));
    }

    #[test]
    fn nothing_usable_lists_what_is_offered() {
        let modes = [
            mode(FourCc::YUYV, 320, 240, &[30]),
            mode(FourCc(*b"H264"), 1920, 1080, &[30]),
            mode(FourCc::MJPG, 640, 360, &[30]),
        ];
        let err = choose(&modes, want(640, 480, 30)).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::NoUsableFormat {
                    width: 640,
                    height: 480,
                    fps: 30,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        for offered in [
            "YUYV 320x240 (30 fps)",
            "H264 1920x1080 (30 fps)",
            "MJPG 640x360 (30 fps)",
        ] {
            assert!(text.contains(offered), "{text}");
        }
        assert!(text.ends_with(DEV), "device path comes last: {text}");
        let err = choose(&[], want(640, 480, 30)).unwrap_err();
        assert!(err.to_string().contains("no formats"), "{err}");
    }

    #[test]
    fn stepwise_ranges() {
        // Continuous 16..=1920 x 16..=1080 step 8: the first multiple at or above.
        assert_eq!(
            stepwise_sizes((16, 16), (1920, 1080), (8, 8), (225, 224)),
            vec![(232, 224)]
        );
        assert_eq!(
            stepwise_sizes((320, 240), (1920, 1080), (0, 0), (100, 100)),
            vec![(320, 240)]
        );
        assert_eq!(
            stepwise_sizes((16, 16), (640, 480), (16, 16), (1280, 720)),
            vec![(640, 480)]
        );
        let got = stepwise_intervals(Fraction::new(1, 60), Fraction::new(1, 1), 25);
        assert_eq!(
            got,
            vec![
                Fraction::new(1, 60),
                Fraction::new(1, 1),
                Fraction::new(1, 25)
            ]
        );
        assert_eq!(
            stepwise_intervals(Fraction::new(1, 15), Fraction::new(1, 1), 30).len(),
            2
        );
    }

    fn actual(fourcc: FourCc, width: u32, height: u32, bytesperline: u32) -> ActualFormat {
        ActualFormat {
            fourcc,
            width,
            height,
            bytesperline,
            sizeimage: bytesperline * height,
        }
    }

    fn verify(
        requested: &Choice,
        wanted: Wanted,
        got: ActualFormat,
    ) -> Result<Negotiated, V4l2Error> {
        verify_format(requested, &wanted, &got, Path::new(DEV))
    }

    #[test]
    fn driver_changes_are_checked() {
        let wanted = want(320, 240, 30);
        let requested = choose(&webcam(), wanted).unwrap();
        assert_eq!((requested.width, requested.height), (320, 240));

        let ok = verify(&requested, wanted, actual(FourCc::YUYV, 320, 240, 640)).unwrap();
        assert_eq!(
            ok,
            Negotiated {
                format: PixelFormat::Yuyv,
                width: 320,
                height: 240,
                stride: 640
            }
        );
        // Padded rows are kept as the stride.
        assert_eq!(
            verify(&requested, wanted, actual(FourCc::YUYV, 320, 240, 768))
                .unwrap()
                .stride,
            768
        );
        // Another size that still covers the wanted one: accepted (with a warning).
        let bigger = verify(&requested, wanted, actual(FourCc::YUYV, 640, 480, 1280)).unwrap();
        assert_eq!(
            (bigger.width, bigger.height, bigger.stride),
            (640, 480, 1280)
        );
        // Missing bytesperline: packed rows assumed.
        assert_eq!(
            verify(&requested, wanted, actual(FourCc::YUYV, 320, 240, 0))
                .unwrap()
                .stride,
            640
        );

        let err = verify(&requested, wanted, actual(FourCc::MJPG, 320, 240, 0)).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::FormatChanged {
                    requested: FourCc::YUYV,
                    actual: FourCc::MJPG,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with(DEV), "{err}");
        let err = verify(&requested, wanted, actual(FourCc::YUYV, 160, 120, 320)).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::SizeTooSmall {
                    width: 160,
                    height: 120,
                    min_width: 320,
                    min_height: 240,
                    ..
                }
            ),
            "{err}"
        );
        let err = verify(&requested, wanted, actual(FourCc::YUYV, 320, 240, 600)).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::BadStride {
                    stride: 600,
                    min: 640,
                    ..
                }
            ),
            "{err}"
        );
        let err = verify(&requested, wanted, actual(FourCc::YUYV, 321, 240, 642)).unwrap_err();
        assert!(matches!(err, V4l2Error::OddWidth { width: 321 }), "{err}");

        let mjpeg = choose(&webcam(), want(1280, 720, 30)).unwrap();
        let ok = verify(
            &mjpeg,
            want(1280, 720, 30),
            actual(FourCc::MJPG, 1280, 720, 0),
        )
        .unwrap();
        assert_eq!((ok.format, ok.stride), (PixelFormat::Mjpeg, 0));
    }

    #[test]
    fn interval_changes_only_warn() {
        let dev = Path::new(DEV);
        assert_eq!(
            verify_interval(
                Some(Fraction::new(1, 30)),
                Some(Fraction::new(1, 30)),
                30,
                dev
            ),
            Some(30.0)
        );
        assert_eq!(
            verify_interval(
                Some(Fraction::new(1, 30)),
                Some(Fraction::new(1, 15)),
                30,
                dev
            ),
            Some(15.0)
        );
        assert_eq!(verify_interval(None, None, 30, dev), None);
        assert_eq!(
            verify_interval(
                Some(Fraction::new(1, 30)),
                Some(Fraction::new(0, 0)),
                30,
                dev
            ),
            None
        );
    }

    #[test]
    fn fourcc_round_trips_and_prints() {
        assert_eq!(FourCc::from_u32(0x5659_5559), FourCc::YUYV);
        assert_eq!(FourCc::YUYV.to_u32(), 0x5659_5559);
        assert_eq!(FourCc::MJPG.to_string(), "MJPG");
        assert_eq!(FourCc(*b"Y16 ").to_string(), "Y16");
        assert_eq!(FourCc([0, 1, 2, 3]).to_string(), "0x03020100");
        assert_eq!(Fraction::new(1001, 30000).to_string(), "29.97 fps");
        assert_eq!(Fraction::new(0, 1).fps(), None);
    }
}
