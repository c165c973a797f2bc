//! What a source hands to the rest of the pipeline: one video frame or one block of audio,
//! stamped with the stream time and the wall-clock time at which the sensor captured it.

use std::time::{Duration, SystemTime};

/// Where and when a sample was captured; every later message carries it so that latency is
/// measured from the sensor, not from the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    /// Position in the stream (GStreamer PTS, V4L2 timestamp, or samples / rate).
    pub pts: Duration,
    /// Wall-clock time of capture.
    pub captured_at: SystemTime,
    /// Counts samples of this stream from 0, across source restarts.
    pub seq: u64,
}

/// A packed RGB24 frame, rows without padding (`data.len() == width * height * 3`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    pub stamp: Stamp,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Packs an RGB24 plane whose rows are `stride` bytes apart (GStreamer pads RGB rows to 4
/// bytes) into rows without padding.
pub fn pack_rgb_rows(data: &[u8], stride: i32, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let stride = usize::try_from(stride).map_err(|_| format!("negative stride {stride}"))?;
    let row = width as usize * 3;
    let rows = height as usize;
    if stride < row || data.len() < stride * rows.saturating_sub(1) + row {
        return Err(format!(
            "buffer of {} bytes too small for {rows} rows of {row} bytes at stride {stride}",
            data.len()
        ));
    }
    let mut rgb = Vec::with_capacity(row * rows);
    for y in 0..rows {
        rgb.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok(rgb)
}

/// Mono f32 samples in [-1, 1] at `rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    /// Stamp of the first sample of the block.
    pub stamp: Stamp,
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// One snippet's pre-extracted features, replayed from files as a stream (XD-Violence
/// distributes its data this way): a vector per modality.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// Stamp of the snippet's start.
    pub stamp: Stamp,
    pub duration: Duration,
    pub video: Vec<f32>,
    pub audio: Vec<f32>,
    pub flow: Vec<f32>,
}

/// One unit of captured data.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Video(VideoFrame),
    Audio(AudioBlock),
    /// One push-broom hyperspectral line.
    Spectral(super::pushbroom::SpectralLine),
    /// One snippet of pre-extracted features.
    Features(FeatureRow),
}

impl Sample {
    pub fn stamp(&self) -> &Stamp {
        match self {
            Sample::Video(f) => &f.stamp,
            Sample::Audio(a) => &a.stamp,
            Sample::Spectral(l) => &l.stamp,
            Sample::Features(row) => &row.stamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pack_rgb_rows;

    #[test]
    fn padding_is_skipped_and_short_or_odd_planes_refused() {
        // 2×2 pixels, rows padded from 6 to 8 bytes.
        let data = [1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12];
        assert_eq!(
            pack_rgb_rows(&data, 8, 2, 2).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        );
        assert!(
            pack_rgb_rows(&data[..13], 8, 2, 2)
                .unwrap_err()
                .contains("too small")
        );
        assert!(
            pack_rgb_rows(&data, 5, 2, 2)
                .unwrap_err()
                .contains("at stride 5")
        );
        assert!(
            pack_rgb_rows(&data, -8, 2, 2)
                .unwrap_err()
                .contains("negative stride")
        );
    }
}
