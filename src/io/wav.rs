//! WAV files: mono 16-bit PCM written (what every player and GStreamer's `wavparse` read), and
//! 16-bit or float PCM read back, channels averaged, for scoring and mixing recordings offline.

use std::path::{Path, PathBuf};

/// A recording read from a WAV file: mono samples in [-1, 1] at `rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub rate: u32,
    pub samples: Vec<f32>,
}

impl Recording {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }
}

/// What is wrong with a WAV file; each names it.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Format { path: PathBuf, problem: String },
}

/// Reads a RIFF/WAVE file of 16-bit integer or 32-bit float PCM (WAVE_FORMAT_EXTENSIBLE
/// included), any channel count, averaging the channels to mono. Chunks other than `fmt ` and
/// `data` are skipped; a `data` chunk cut short by a truncated file is refused rather than
/// read in part, so that a damaged recording is not scored as a shorter one.
pub fn read_pcm(path: &Path) -> Result<Recording, WavError> {
    let bytes = std::fs::read(path).map_err(|source| WavError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pcm(&bytes).map_err(|problem| WavError::Format {
        path: path.to_path_buf(),
        problem,
    })
}

fn parse_pcm(bytes: &[u8]) -> Result<Recording, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            if len < 16 || body + 16 > bytes.len() {
                return Err(format!("`fmt ` chunk of {len} bytes, expected at least 16"));
            }
            let mut tag = u16_at(body);
            if tag == 0xFFFE && len >= 26 && body + 26 <= bytes.len() {
                // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
                tag = u16_at(body + 24);
            }
            format = Some((tag, u16_at(body + 2), u32_at(body + 4), u16_at(body + 14)));
        } else if id == b"data" {
            let Some((tag, channels, rate, bits)) = format else {
                return Err("`data` chunk before any `fmt ` chunk".into());
            };
            if channels == 0 || rate == 0 {
                return Err(format!("{channels} channels at {rate} Hz"));
            }
            let width = match (tag, bits) {
                (1, 16) => 2,
                (3, 32) => 4,
                _ => {
                    return Err(format!(
                        "format tag {tag} with {bits}-bit samples; vigil reads 16-bit integer or \
                         32-bit float PCM (convert with `ffmpeg -i IN -c:a pcm_s16le OUT.wav`)"
                    ));
                }
            };
            let end = body
                .checked_add(len)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(|| {
                    format!(
                        "`data` chunk claims {len} bytes, the file holds {} after its header: \
                         truncated",
                        bytes.len().saturating_sub(body)
                    )
                })?;
            let frame = width * usize::from(channels);
            let data = &bytes[body..end - (end - body) % frame];
            let scale = 1.0 / f32::from(channels);
            let samples = data
                .chunks_exact(frame)
                .map(|f| {
                    f.chunks_exact(width)
                        .map(|s| match width {
                            2 => f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0,
                            _ => f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                        })
                        .sum::<f32>()
                        * scale
                })
                .collect::<Vec<f32>>();
            if let Some(bad) = samples.iter().position(|s| !s.is_finite()) {
                return Err(format!("sample {bad} is not a finite number"));
            }
            return Ok(Recording { rate, samples });
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(len).saturating_add(len & 1);
    }
    Err("no `data` chunk".into())
}

/// Writes `samples` (in [-1, 1], clipped beyond) as mono 16-bit PCM at `rate` Hz.
pub fn write_mono_pcm16(path: &Path, rate: u32, samples: &[f32]) -> std::io::Result<()> {
    let data_len = u32::try_from(samples.len() * 2)
        .ok()
        .filter(|len| *len <= u32::MAX - 36)
        .ok_or_else(|| std::io::Error::other("too many samples for one WAV file"))?;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    bytes.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back_and_bad_ones_name_their_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let samples = [0.0, 0.5, -0.5, 0.25];
        write_mono_pcm16(&path, 16_000, &samples).unwrap();
        let read = read_pcm(&path).unwrap();
        assert_eq!(read.rate, 16_000);
        for (a, b) in read.samples.iter().zip(samples) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let bytes = std::fs::read(&path).unwrap();
        let truncated = parse_pcm(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(truncated.contains("truncated"), "{truncated}");
        assert!(parse_pcm(b"OggS....").unwrap_err().contains("RIFF"));
        let mut eight_bit = bytes.clone();
        eight_bit[34] = 8;
        assert!(parse_pcm(&eight_bit).unwrap_err().contains("8-bit"));
        let error = read_pcm(&dir.path().join("missing.wav")).unwrap_err();
        assert!(error.to_string().contains("missing.wav"), "{error}");
    }

    #[test]
    fn stereo_is_averaged_and_unknown_chunks_skipped() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF\0\0\0\0WAVE");
        bytes.extend_from_slice(b"LIST");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"abc\0"); // odd length, padded
        bytes.extend_from_slice(b"fmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        for v in [1u16, 2] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&32000u32.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&8u32.to_le_bytes());
        for v in [16384i16, 0, -16384, -16384] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let read = parse_pcm(&bytes).unwrap();
        assert_eq!(read.rate, 8000);
        assert_eq!(read.samples, [0.25, -0.5]);
    }

    #[test]
    fn header_and_samples_are_where_readers_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        super::write_mono_pcm16(&path, 16_000, &[0.0, 1.0, -1.0, 2.0]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44 + 8);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
            16_000
        );
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 8);
        let samples: Vec<i16> = bytes[44..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(samples, [0, 32767, -32767, 32767]);
    }
}
