//! Camera frames to a factory-line model's input: the profile's region of the frame (the whole
//! frame by default), or the tiles it is cut into when it holds several parts' worth of pixels
//! ([`tile_grid`]), each resized bilinearly to S×S and normalised as the model was trained
//! (ISSTAD: to [−1, 1]; PatchCore's ImageNet backbone: ImageNet's statistics). The frame itself
//! travels along (shared, not copied again) so that a heatmap snapshot can be drawn on what the
//! camera saw.

use std::sync::Arc;

use crate::capture::{Sample, Stamp, VideoFrame};
use crate::pipeline::{Prepare, StageError};
use crate::prepare::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use crate::prepare::resize::{Crop, FrameResizer};

/// Frames kept for reuse. Each message in flight holds one; the pipeline's queues hold a few
/// messages each, so this many covers the usual depth and anything beyond is allocated.
const FRAME_POOL: usize = 16;

/// One frame, ready for the model.
#[derive(Debug, Clone)]
pub struct FrameInput {
    /// The frame as captured (RGB24), for snapshots and for boxes in frame pixels.
    pub frame: Arc<VideoFrame>,
    /// The rectangle of the frame the model looks at.
    pub region: Crop,
    /// The rectangles of the frame each image was cut from: the region itself, or its tiles.
    pub tiles: Vec<Crop>,
    /// One `[3, S, S]` block of normalised values per tile, channel-major, in `tiles`' order.
    pub image: Vec<f32>,
}

/// Tiles of `tile` (width, height) covering `region`: as many along each side as it takes to
/// cover it, spread evenly from its first to its last pixel, so neighbours overlap when the
/// region is not a whole number of tiles and none reaches outside it. A side shorter than a
/// tile gets one tile of the region's length there.
pub fn tile_grid(region: Crop, tile: (usize, usize)) -> Vec<Crop> {
    let spread = |start: usize, length: usize, step: usize| -> Vec<(usize, usize)> {
        let step = step.clamp(1, length.max(1));
        let count = length.div_ceil(step);
        (0..count)
            .map(|i| {
                let offset = if count == 1 {
                    0
                } else {
                    (i * (length - step) + (count - 1) / 2) / (count - 1)
                };
                (start + offset, step)
            })
            .collect()
    };
    let columns = spread(region.x, region.width, tile.0);
    let rows = spread(region.y, region.height, tile.1);
    rows.iter()
        .flat_map(|&(y, height)| {
            columns.iter().map(move |&(x, width)| Crop {
                x,
                y,
                width,
                height,
            })
        })
        .collect()
}

/// How pixel values in [0, 1] are normalised for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalisation {
    /// `(v − 0.5) / 0.5`, to [−1, 1]: ISSTAD's.
    Half,
    /// ImageNet's per-channel mean and standard deviation: torchvision's backbones'.
    ImageNet,
}

pub struct IndustrialPrepare {
    resizer: FrameResizer,
    /// The part of each frame the model sees; `None`: the whole frame.
    region: Option<Crop>,
    /// The size, in frame pixels, of the parts the model was fitted on, when the region is to
    /// be cut into tiles of it.
    tile: Option<(usize, usize)>,
    /// Frames handed out earlier; one nobody else holds any more is overwritten instead of
    /// allocating a new one.
    pool: Vec<Arc<VideoFrame>>,
}

fn refused(detail: String) -> StageError {
    StageError {
        stage: "prepare frame",
        detail,
    }
}

impl IndustrialPrepare {
    /// A prepare stage for a model whose input is `[1, 3, side, side]`, normalised as
    /// `normalisation` says, that sees `region` of each frame (the whole frame if `None`).
    pub fn new(
        side: usize,
        normalisation: Normalisation,
        region: Option<Crop>,
    ) -> Result<Self, StageError> {
        Self::tiled(side, normalisation, region, None)
    }

    /// As [`Self::new`], cutting the region into tiles of `tile` (width, height) frame pixels
    /// ([`tile_grid`]) when given.
    pub fn tiled(
        side: usize,
        normalisation: Normalisation,
        region: Option<Crop>,
        tile: Option<(usize, usize)>,
    ) -> Result<Self, StageError> {
        let resizer = match normalisation {
            Normalisation::Half => FrameResizer::new(side),
            Normalisation::ImageNet => {
                FrameResizer::with_normalisation(side, IMAGENET_MEAN, IMAGENET_STD)
            }
        };
        Ok(Self {
            resizer: resizer.map_err(|err| refused(err.to_string()))?,
            region,
            tile,
            pool: Vec::new(),
        })
    }

    pub fn side(&self) -> usize {
        self.resizer.side()
    }

    /// A shared copy of `frame`, in a pooled allocation when one is free.
    fn share(&mut self, frame: &VideoFrame) -> Arc<VideoFrame> {
        for slot in &mut self.pool {
            if let Some(free) = Arc::get_mut(slot) {
                free.stamp = frame.stamp;
                free.width = frame.width;
                free.height = frame.height;
                // Reuses the slot's buffer when it is large enough (same-sized frames always).
                free.rgb.clone_from(&frame.rgb);
                return slot.clone();
            }
        }
        let shared = Arc::new(frame.clone());
        if self.pool.len() < FRAME_POOL {
            self.pool.push(shared.clone());
        }
        shared
    }

    /// Checks and converts one frame.
    pub fn frame(&mut self, frame: &VideoFrame) -> Result<FrameInput, StageError> {
        let (width, height) = (frame.width as usize, frame.height as usize);
        // A frame whose bytes do not match its size is refused rather than read with the wrong
        // stride: a misread frame would look like a defect everywhere.
        let region = self.region.unwrap_or(Crop::whole(width, height));
        let tiles = match self.tile {
            Some(tile) => tile_grid(region, tile),
            None => vec![region],
        };
        let block = self.resizer.output_len();
        let mut image = vec![0.0; block * tiles.len()];
        for (tile, out) in tiles.iter().zip(image.chunks_exact_mut(block)) {
            self.resizer
                .normalised_region_chw(&frame.rgb, width, height, *tile, out)
                .map_err(|err| refused(format!("frame {}: {err}", frame.stamp.seq)))?;
        }
        Ok(FrameInput {
            frame: self.share(frame),
            region,
            tiles,
            image,
        })
    }
}

impl Prepare for IndustrialPrepare {
    type Output = FrameInput;

    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, FrameInput),
    ) -> Result<(), StageError> {
        let Sample::Video(frame) = sample else {
            return Err(refused(
                "a factory-line stream got an audio block or a spectral line, not a video frame"
                    .into(),
            ));
        };
        let input = self.frame(frame)?;
        emit(frame.stamp, input);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn frame(seq: u64, width: u32, height: u32, bytes: usize) -> VideoFrame {
        VideoFrame {
            stamp: Stamp {
                pts: Duration::from_millis(seq * 100),
                captured_at: SystemTime::UNIX_EPOCH,
                seq,
            },
            width,
            height,
            rgb: (0..bytes).map(|i| (i % 256) as u8).collect(),
        }
    }

    #[test]
    fn frames_are_resized_and_their_buffers_reused_once_released() {
        let mut prepare = IndustrialPrepare::new(4, Normalisation::Half, None).unwrap();
        let first = prepare.frame(&frame(0, 6, 5, 90)).unwrap();
        assert_eq!(first.image.len(), 48);
        assert!(first.image.iter().all(|v| (-1.0..=1.0).contains(v)));
        let address = Arc::as_ptr(&first.frame);
        // Still held downstream: a new frame gets its own allocation.
        let second = prepare.frame(&frame(1, 6, 5, 90)).unwrap();
        assert_ne!(Arc::as_ptr(&second.frame), address);
        drop(first);
        let third = prepare.frame(&frame(2, 6, 5, 90)).unwrap();
        assert_eq!(Arc::as_ptr(&third.frame), address);
        assert_eq!(third.frame.stamp.seq, 2);
    }

    #[test]
    fn tiles_cover_the_region_evenly_without_leaving_it() {
        let region = Crop {
            x: 10,
            y: 20,
            width: 500,
            height: 224,
        };
        let tiles = tile_grid(region, (224, 224));
        // Three columns (500 needs ceil(500 / 224) = 3), one row; first at the left edge, last
        // ending at the right edge, the middle one halfway.
        let xs: Vec<usize> = tiles.iter().map(|t| t.x).collect();
        assert_eq!(xs, vec![10, 148, 286]);
        assert!(
            tiles
                .iter()
                .all(|t| (t.y, t.width, t.height) == (20, 224, 224))
        );
        assert_eq!(tiles[2].x + tiles[2].width, region.x + region.width);
        // A whole number of tiles: no overlap.
        let exact = tile_grid(Crop::whole(448, 448), (224, 224));
        assert_eq!(
            exact.iter().map(|t| (t.x, t.y)).collect::<Vec<_>>(),
            vec![(0, 0), (224, 0), (0, 224), (224, 224)]
        );
        // A region smaller than a tile: one tile, the region itself.
        let small = Crop {
            x: 3,
            y: 4,
            width: 100,
            height: 50,
        };
        assert_eq!(tile_grid(small, (224, 224)), vec![small]);
    }

    #[test]
    fn a_tiled_frame_gives_one_image_per_tile() {
        let mut prepare =
            IndustrialPrepare::tiled(4, Normalisation::Half, None, Some((3, 5))).unwrap();
        let input = prepare.frame(&frame(0, 6, 5, 90)).unwrap();
        assert_eq!(input.tiles.len(), 2);
        assert_eq!(input.image.len(), 2 * 48);
        assert_eq!(input.region, Crop::whole(6, 5));
    }

    #[test]
    fn a_frame_whose_bytes_do_not_match_its_size_is_refused_with_both() {
        let mut prepare = IndustrialPrepare::new(4, Normalisation::Half, None).unwrap();
        let sample = Sample::Video(frame(7, 640, 480, 640 * 480 * 4));
        let err = prepare
            .prepare(&sample, &mut |_, _| panic!("nothing is emitted"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("frame 7") && err.contains("1228800 bytes, expected 921600 for 640×480"),
            "{err}"
        );
    }
}
