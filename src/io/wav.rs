//! WAV writing: mono 16-bit PCM, what every player and GStreamer's `wavparse` read.

use std::path::Path;

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
