//! The memory bank file: the patch features PatchCore keeps from the good images, with what
//! they were computed by, so that a bank is never searched with features of another backbone,
//! another layer choice or another input size.
//!
//! ```text
//! bytes 0..8     b"VGLBANK1"
//! bytes 8..12    header length H, u32 little-endian
//! bytes 12..12+H the header, UTF-8 JSON (BankHeader)
//! then           patches × feature_dim f32 little-endian, row-major (one patch per row)
//! ```
//!
//! The file's length must be exactly what the header says, and every value finite: a bank cut
//! short by a full disk or holding a NaN is refused on load, naming the file, rather than
//! searched.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::embed::TapShape;

/// The first eight bytes of every bank file (format version 1).
pub const MAGIC: &[u8; 8] = b"VGLBANK1";

/// Largest header accepted: a real one is a few hundred bytes, and a corrupt length must not
/// allocate gigabytes.
const MAX_HEADER: usize = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("cannot {action} memory bank ({detail}): {}", path.display())]
    Io {
        action: &'static str,
        detail: String,
        path: PathBuf,
    },
    #[error("not a vigil memory bank (no {MAGIC:?} at its start): {}", path.display())]
    NotABank { path: PathBuf },
    #[error("memory bank header is unreadable ({detail}): {}", path.display())]
    Header { detail: String, path: PathBuf },
    #[error(
        "memory bank holds {got} bytes of features, its header says {patches} patches × {dim} \
         values ({expected} bytes): {}", path.display()
    )]
    Length {
        patches: usize,
        dim: usize,
        expected: usize,
        got: usize,
        path: PathBuf,
    },
    #[error("memory bank value {index} (patch {patch}) is {value}, not a finite number: {}", path.display())]
    NonFinite {
        index: usize,
        patch: usize,
        value: f32,
        path: PathBuf,
    },
    #[error(
        "memory bank was fitted with {what} {bank}, but the model has {model}: refit it with \
         `vigil-train industrial fit` for this model: {}", path.display()
    )]
    Mismatch {
        what: &'static str,
        bank: String,
        model: String,
        path: PathBuf,
    },
}

/// What a bank's features were computed by, and how many there are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankHeader {
    /// sha256 of the backbone's ONNX file (the manifest entry's first file).
    pub backbone_sha256: String,
    /// Side of the square image the backbone saw.
    pub image_size: usize,
    /// The backbone outputs the patch features concatenate, in order; the first one's grid is
    /// the patch grid.
    pub taps: Vec<TapShape>,
    /// Values per patch: the taps' channels summed.
    pub feature_dim: usize,
    /// Rows of the bank.
    pub patches: usize,
    /// Good images the bank was fitted on, and the patches they gave before subsampling.
    pub images: usize,
    pub candidates: usize,
}

/// A bank loaded into memory: `patches × feature_dim` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBank {
    pub header: BankHeader,
    pub features: Vec<f32>,
}

impl MemoryBank {
    /// Reads and checks a bank file; every error names the file.
    pub fn read(path: &Path) -> Result<Self, BankError> {
        let bytes = std::fs::read(path).map_err(|err| BankError::Io {
            action: "read",
            detail: err.to_string(),
            path: path.to_path_buf(),
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a bank file read from `path` (named in errors only).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, BankError> {
        let header_error = |detail: String| BankError::Header {
            detail,
            path: path.to_path_buf(),
        };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(BankError::NotABank {
                path: path.to_path_buf(),
            });
        }
        let mut length = [0u8; 4];
        length.copy_from_slice(&bytes[8..12]);
        let header_len = u32::from_le_bytes(length) as usize;
        if header_len > MAX_HEADER || 12 + header_len > bytes.len() {
            return Err(header_error(format!(
                "header length {header_len} does not fit a {}-byte file",
                bytes.len()
            )));
        }
        let header: BankHeader = serde_json::from_slice(&bytes[12..12 + header_len])
            .map_err(|err| header_error(err.to_string()))?;
        let dim: usize = header.taps.iter().map(|tap| tap.channels).sum();
        if dim != header.feature_dim || dim == 0 {
            return Err(header_error(format!(
                "feature_dim {} is not the taps' {dim} channels",
                header.feature_dim
            )));
        }
        if header.patches == 0 {
            return Err(header_error("the bank holds no patches".into()));
        }
        let body = &bytes[12 + header_len..];
        let expected = header
            .patches
            .checked_mul(dim)
            .and_then(|values| values.checked_mul(4));
        if expected != Some(body.len()) {
            return Err(BankError::Length {
                patches: header.patches,
                dim,
                expected: expected.unwrap_or(usize::MAX),
                got: body.len(),
                path: path.to_path_buf(),
            });
        }
        let mut features = Vec::with_capacity(body.len() / 4);
        for (index, chunk) in body.chunks_exact(4).enumerate() {
            let value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if !value.is_finite() {
                return Err(BankError::NonFinite {
                    index,
                    patch: index / dim,
                    value,
                    path: path.to_path_buf(),
                });
            }
            features.push(value);
        }
        Ok(Self { header, features })
    }

    /// Writes the bank whole: into a dot-named file beside `path`, synced, then renamed over
    /// it, so a reader never sees half a bank.
    pub fn write(&self, path: &Path) -> Result<(), BankError> {
        let io = |action, err: std::io::Error, path: &Path| BankError::Io {
            action,
            detail: err.to_string(),
            path: path.to_path_buf(),
        };
        let header = serde_json::to_vec(&self.header).map_err(|err| BankError::Header {
            detail: err.to_string(),
            path: path.to_path_buf(),
        })?;
        let name = path
            .file_name()
            .map_or_else(|| "bank".into(), |name| name.to_string_lossy().into_owned());
        let partial = path.with_file_name(format!(".{name}.partial"));
        let mut bytes = Vec::with_capacity(12 + header.len() + self.features.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        for value in &self.features {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        let mut file = std::fs::File::create(&partial).map_err(|e| io("create", e, &partial))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e, &partial))?;
        std::fs::rename(&partial, path).map_err(|e| io("rename", e, path))
    }

    /// Refuses a bank whose features another backbone, layer choice or input size computed.
    pub fn check_fits(
        &self,
        backbone_sha256: &str,
        image_size: usize,
        taps: &[TapShape],
        path: &Path,
    ) -> Result<(), BankError> {
        let mismatch = |what, bank: String, model: String| BankError::Mismatch {
            what,
            bank,
            model,
            path: path.to_path_buf(),
        };
        if !self
            .header
            .backbone_sha256
            .eq_ignore_ascii_case(backbone_sha256)
        {
            return Err(mismatch(
                "backbone (sha256)",
                self.header.backbone_sha256.clone(),
                backbone_sha256.to_string(),
            ));
        }
        if self.header.image_size != image_size {
            return Err(mismatch(
                "image size",
                self.header.image_size.to_string(),
                image_size.to_string(),
            ));
        }
        if self.header.taps != taps {
            let describe = |taps: &[TapShape]| {
                taps.iter()
                    .map(TapShape::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(mismatch(
                "feature layers",
                describe(&self.header.taps),
                describe(taps),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> MemoryBank {
        MemoryBank {
            header: BankHeader {
                backbone_sha256: "ab".repeat(32),
                image_size: 32,
                taps: vec![
                    TapShape::new("block5", 2, 4, 4),
                    TapShape::new("block12", 1, 2, 2),
                ],
                feature_dim: 3,
                patches: 2,
                images: 1,
                candidates: 16,
            },
            features: vec![1.0, 2.0, 3.0, -4.0, 5.5, 0.0],
        }
    }

    #[test]
    fn a_bank_round_trips_and_checks_its_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bank");
        let original = bank();
        original.write(&path).unwrap();
        let read = MemoryBank::read(&path).unwrap();
        assert_eq!(read, original);
        let taps = original.header.taps.clone();
        read.check_fits(&"AB".repeat(32), 32, &taps, &path).unwrap();
        let err = read
            .check_fits(&"cd".repeat(32), 32, &taps, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backbone (sha256)") && err.contains("b.bank"),
            "{err}"
        );
        let err = read
            .check_fits(&"ab".repeat(32), 64, &taps, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("image size 32, but the model has 64"), "{err}");
        let err = read
            .check_fits(&"ab".repeat(32), 32, &taps[..1], &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("feature layers"), "{err}");
    }

    #[test]
    fn damaged_banks_are_refused_naming_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bank");
        bank().write(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let parse = |bytes: &[u8]| MemoryBank::parse(bytes, &path).unwrap_err().to_string();

        assert!(parse(b"PNG....").contains("not a vigil memory bank"));
        let short = &good[..good.len() - 4];
        assert!(
            parse(short).contains("holds 20 bytes of features"),
            "{}",
            parse(short)
        );
        let mut long_header = good.clone();
        long_header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&long_header).contains("header length"));
        let mut nan = good.clone();
        let at = nan.len() - 8;
        nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = parse(&nan);
        assert!(err.contains("value 4 (patch 1) is NaN"), "{err}");
        let mut bad_json = good.clone();
        bad_json[12] = b'[';
        assert!(parse(&bad_json).contains("header is unreadable"));
        let err = MemoryBank::read(&dir.path().join("absent.bank"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read memory bank") && err.contains("absent.bank"));
    }
}
