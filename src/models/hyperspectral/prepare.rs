//! Checks each line against the stream's shape and keeps the bands the detector uses.

use crate::capture::pushbroom::SpectralLine;
use crate::capture::{Sample, Stamp};
use crate::pipeline::{Prepare, StageError};

pub struct LinePrepare {
    /// Bands kept from the front of each spectrum; 0 = all.
    bands: usize,
    /// (width, bands) of the first line: later lines must match, or the statistics would mix
    /// different sensors' pixels.
    shape: Option<(usize, usize)>,
}

impl LinePrepare {
    pub fn new(bands: usize) -> LinePrepare {
        LinePrepare { bands, shape: None }
    }
}

fn refused(detail: String) -> StageError {
    StageError {
        stage: "prepare",
        detail,
    }
}

impl Prepare for LinePrepare {
    type Output = SpectralLine;

    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, SpectralLine),
    ) -> Result<(), StageError> {
        let Sample::Spectral(line) = sample else {
            return Err(refused(
                "a hyperspectral stream got a video frame or audio block".into(),
            ));
        };
        if line.values.len() != line.width * line.bands {
            return Err(refused(format!(
                "line {} has {} values for {} pixels × {} bands",
                line.index,
                line.values.len(),
                line.width,
                line.bands
            )));
        }
        match self.shape {
            None => self.shape = Some((line.width, line.bands)),
            Some(shape) if shape != (line.width, line.bands) => {
                return Err(refused(format!(
                    "line {} is {} px × {} bands, the stream started at {} px × {} bands",
                    line.index, line.width, line.bands, shape.0, shape.1
                )));
            }
            Some(_) => {}
        }
        if self.bands == 0 || self.bands == line.bands {
            emit(line.stamp, line.clone());
            return Ok(());
        }
        if self.bands > line.bands {
            return Err(refused(format!(
                "the detector needs {} bands, the sensor delivers {}",
                self.bands, line.bands
            )));
        }
        let values = line
            .values
            .chunks_exact(line.bands)
            .flat_map(|spectrum| spectrum[..self.bands].iter().copied())
            .collect();
        emit(
            line.stamp,
            SpectralLine {
                values,
                bands: self.bands,
                ..line.clone()
            },
        );
        Ok(())
    }
}
