//! The two file layouts `torch.save` has used, reduced to "the pickled object" plus "the
//! bytes of storage `key`".
//!
//! * zip (torch >= 1.6): `<name>/data.pkl`, `<name>/data/<key>` raw storages,
//!   `<name>/byteorder` ("little"/"big", absent in the first zip versions).
//! * legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`): pickles back to back:
//!   magic number, protocol version 1001, sys_info, the object, the list of storage keys;
//!   then per key an 8-byte little-endian element count and the raw elements.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use super::TorchReadError;
use super::pickle::{self, Source, StorageRef, Value};
use super::tensor::DType;

/// 0x1950a86a20f9469cfc6c as the LONG1 payload (little-endian) `torch.save` pickles first.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

pub(crate) struct Checkpoint {
    pub root: Value,
    pub little_endian: bool,
    store: Store,
}

enum Store {
    Zip {
        archive: zip::ZipArchive<File>,
        prefix: String,
        /// Storages read so far; tensors that share one read it once.
        cache: HashMap<String, Vec<u8>>,
    },
    Legacy {
        data: Vec<u8>,
        ranges: HashMap<String, Range<usize>>,
    },
}

impl Checkpoint {
    pub fn open(path: &Path) -> Result<Self, TorchReadError> {
        let io = |source| TorchReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut head = Vec::with_capacity(4);
        File::open(path)
            .map_err(io)?
            .take(4)
            .read_to_end(&mut head)
            .map_err(io)?;
        match head.as_slice() {
            [b'P', b'K', 3, 4] => open_zip(path),
            // Every legacy file opens with `PROTO 2` (torch's DEFAULT_PROTOCOL).
            [0x80, ..] => open_legacy(path, std::fs::read(path).map_err(io)?),
            _ => Err(TorchReadError::NotCheckpoint {
                path: path.to_path_buf(),
                detail: format!(
                    "starts with bytes {head:02x?}, neither a zip archive nor a pickle"
                ),
            }),
        }
    }

    /// The root storage bytes behind `sref`, checked to hold exactly `sref.numel` elements.
    pub fn storage(&mut self, path: &Path, sref: &StorageRef) -> Result<&[u8], TorchReadError> {
        let bad = |detail: String| TorchReadError::Storage {
            path: path.to_path_buf(),
            key: sref.key.clone(),
            detail,
        };
        let expected = sref
            .numel
            .checked_mul(sref.dtype.size())
            .ok_or_else(|| bad(format!("{} elements overflow", sref.numel)))?;
        let bytes: &[u8] = match &mut self.store {
            Store::Zip {
                archive,
                prefix,
                cache,
            } => {
                if !cache.contains_key(&sref.key) {
                    let name = format!("{prefix}data/{}", sref.key);
                    let bytes = read_entry(archive, &name, path)?
                        .ok_or_else(|| bad(format!("archive entry {name} is missing")))?;
                    cache.insert(sref.key.clone(), bytes);
                }
                cache.get(&sref.key).map_or(&[], Vec::as_slice)
            }
            Store::Legacy { data, ranges } => {
                let range = ranges
                    .get(&sref.key)
                    .ok_or_else(|| bad("not in the file's storage list".to_string()))?;
                &data[range.clone()]
            }
        };
        if bytes.len() != expected {
            return Err(bad(format!(
                "holds {} bytes, but the pickle declares {} {} elements ({expected} bytes)",
                bytes.len(),
                sref.numel,
                sref.dtype
            )));
        }
        Ok(bytes)
    }
}

fn open_zip(path: &Path) -> Result<Checkpoint, TorchReadError> {
    let zip_err = |source| TorchReadError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| TorchReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    // torch names the top folder after the file it saved to ("archive/" in most, the
    // MAVD heads use "a_model_seed_500/"), so look the pickle up by its suffix; the
    // shortest match is the top-level one.
    let mut pickle_name: Option<String> = None;
    for name in archive.file_names() {
        let name = name.map_err(zip_err)?;
        let top_level = name.strip_suffix("data.pkl").is_some_and(|dir| {
            dir.is_empty() || (dir.ends_with('/') && dir.matches('/').count() == 1)
        });
        if top_level && pickle_name.as_ref().is_none_or(|n| name.len() < n.len()) {
            pickle_name = Some(name.into_owned());
        }
    }
    let pickle_name = pickle_name.ok_or_else(|| TorchReadError::NotCheckpoint {
        path: path.to_path_buf(),
        detail: "zip archive without a data.pkl (not written by torch.save)".to_string(),
    })?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();

    let pickle_bytes = read_entry(&mut archive, &pickle_name, path)?.unwrap_or_default();
    let byteorder = read_entry(&mut archive, &format!("{prefix}byteorder"), path)?;
    // Files from before the byteorder record were only ever written little-endian.
    let little_endian = match byteorder.as_deref() {
        None | Some(b"little") => true,
        Some(b"big") => false,
        Some(other) => {
            return Err(TorchReadError::NotCheckpoint {
                path: path.to_path_buf(),
                detail: format!("byteorder record says {:?}", String::from_utf8_lossy(other)),
            });
        }
    };
    let src = Source {
        path,
        pickle: &pickle_name,
    };
    let (root, _) = pickle::load(&pickle_bytes, 0, &src)?;
    Ok(Checkpoint {
        root,
        little_endian,
        store: Store::Zip {
            archive,
            prefix,
            cache: HashMap::new(),
        },
    })
}

/// Reads a whole archive entry; `None` if there is no such entry.
fn read_entry(
    archive: &mut zip::ZipArchive<File>,
    name: &str,
    path: &Path,
) -> Result<Option<Vec<u8>>, TorchReadError> {
    let zip_err = |source| TorchReadError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(source) => return Err(zip_err(source)),
    };
    // The declared size only sizes the buffer; a lying header is caught by the reader
    // (CRC and length checks) and by the caller's length check.
    let capacity = usize::try_from(entry.size()).unwrap_or(0).min(1 << 30);
    let mut bytes = Vec::with_capacity(capacity);
    entry
        .read_to_end(&mut bytes)
        .map_err(|source| TorchReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(bytes))
}

fn open_legacy(path: &Path, data: Vec<u8>) -> Result<Checkpoint, TorchReadError> {
    let not_torch = |detail: String| TorchReadError::NotCheckpoint {
        path: path.to_path_buf(),
        detail,
    };
    let load = |start: usize, pickle: &str| pickle::load(&data, start, &Source { path, pickle });

    let (magic, pos) = load(0, "legacy magic number")?;
    if magic != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return Err(not_torch(
            "a pickle, but not opened by torch.save's magic number".to_string(),
        ));
    }
    let (version, pos) = load(pos, "legacy protocol version")?;
    if version != Value::Int(LEGACY_PROTOCOL_VERSION) {
        return Err(not_torch(format!(
            "legacy protocol version {version:?}, only {LEGACY_PROTOCOL_VERSION} is known"
        )));
    }
    let (sys_info, pos) = load(pos, "legacy sys_info")?;
    let little_endian = match sys_info.get("little_endian") {
        Some(Value::Bool(le)) => *le,
        None => true,
        Some(other) => {
            return Err(not_torch(format!(
                "sys_info little_endian is {}",
                other.kind()
            )));
        }
    };
    let (root, pos) = load(pos, "legacy object pickle")?;
    let (keys, mut pos) = load(pos, "legacy storage key list")?;
    let Value::List(keys) = keys else {
        return Err(not_torch(format!("storage key list is {}", keys.kind())));
    };

    // The element size of each storage is only known from the persistent ids in the
    // object pickle, and the storages follow one another, so all are located up front.
    let mut dtypes: HashMap<String, DType> = HashMap::new();
    let mut conflict = None;
    visit_storages(&root, &mut |sref| match dtypes.get(&sref.key) {
        Some(&dtype) if dtype != sref.dtype => conflict = Some(sref.key.clone()),
        Some(_) => {}
        None => {
            dtypes.insert(sref.key.clone(), sref.dtype);
        }
    });
    if let Some(key) = conflict {
        return Err(TorchReadError::Storage {
            path: path.to_path_buf(),
            key,
            detail: "referenced with two different storage types".to_string(),
        });
    }

    let mut ranges = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(not_torch(format!("storage key is {}", key.kind())));
        };
        let truncated = |what: &str| TorchReadError::Truncated {
            path: path.to_path_buf(),
            detail: format!("file ends inside the {what} of storage {key:?}"),
        };
        let dtype = *dtypes.get(&key).ok_or_else(|| TorchReadError::Storage {
            path: path.to_path_buf(),
            key: key.clone(),
            detail: "listed but never referenced, so its element size is unknown".to_string(),
        })?;
        let count: [u8; 8] = data
            .get(pos..pos + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| truncated("element count"))?;
        // The count is little-endian whatever sys_info says.
        let count = u64::from_le_bytes(count);
        let len = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| truncated("data"))?;
        let start = pos + 8;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| truncated("data"))?;
        ranges.insert(key, start..end);
        pos = end;
    }
    Ok(Checkpoint {
        root,
        little_endian,
        store: Store::Legacy { data, ranges },
    })
}

/// Calls `f` for every storage reference reachable from `value`.
pub(crate) fn visit_storages(value: &Value, f: &mut impl FnMut(&StorageRef)) {
    match value {
        Value::Storage(sref) => f(sref),
        Value::Tensor(tref) => f(&tref.storage),
        Value::Tuple(items) | Value::List(items) => items.iter().for_each(|v| visit_storages(v, f)),
        Value::Dict(items) => items.iter().for_each(|(k, v)| {
            visit_storages(k, f);
            visit_storages(v, f);
        }),
        _ => {}
    }
}
