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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn line(index: u64, width: usize, bands: usize) -> Sample {
        Sample::Spectral(SpectralLine {
            stamp: Stamp {
                pts: Duration::ZERO,
                captured_at: SystemTime::UNIX_EPOCH,
                seq: index,
            },
            index,
            width,
            bands,
            values: (0..width * bands).map(|v| v as f32).collect(),
            map_info: None,
        })
    }

    fn prepare(stage: &mut LinePrepare, sample: &Sample) -> Result<Vec<SpectralLine>, StageError> {
        let mut out = Vec::new();
        stage.prepare(sample, &mut |_, line| out.push(line))?;
        Ok(out)
    }

    #[test]
    fn keeps_the_first_bands_and_refuses_lines_that_change_shape() {
        let mut stage = LinePrepare::new(2);
        let kept = prepare(&mut stage, &line(0, 2, 3)).unwrap();
        assert_eq!(kept[0].values, [0.0, 1.0, 3.0, 4.0]);
        let message = prepare(&mut stage, &line(1, 3, 3)).unwrap_err().to_string();
        assert!(
            message.contains("line 1 is 3 px × 3 bands, the stream started at 2 px × 3 bands"),
            "{message}"
        );
        let mut greedy = LinePrepare::new(10);
        let message = prepare(&mut greedy, &line(0, 2, 3))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("needs 10 bands, the sensor delivers 3"),
            "{message}"
        );
    }
}
