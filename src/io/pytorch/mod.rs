//! Reads PyTorch state dicts (`torch.save(model.state_dict(), path)`) without Python.
//!
//! Both container layouts are understood: the zip archive of torch >= 1.6 and the legacy
//! pickle sequence older releases wrote (torchvision's ImageNet weights are of that kind).
//! Tensors come back dense and row-major as f32 whatever their dtype or strides were;
//! integer tensors also keep their exact i64 values.
//!
//! ```ignore
//! // (ignore: the crate path differs between the scratch crate and vigil::train)
//! let sd = read_state_dict(Path::new("mobilenet_v2-b0353104.pth"))?;
//! let w = sd.get("features.0.0.weight").ok_or("missing")?;
//! assert_eq!(w.shape, [32, 3, 3, 3]);
//! // Training checkpoints wrap the weights: {"epoch": 3, "state_dict": {...}}.
//! let sd = read_state_dict_at(Path::new("ckpt.pth"), &["state_dict"])?;
//! ```
//!
//! Only what state dicts contain is modelled. A file holding anything else (a pickled
//! `nn.Module`, numpy arrays, ...) is rejected with the opcode or global that was not
//! understood, never half-read.

mod container;
mod error;
mod pickle;
mod tensor;

use std::collections::HashMap;
use std::path::Path;

pub use error::TorchReadError;
pub use tensor::{DType, Tensor};

use container::Checkpoint;
use pickle::Value;

/// Tensors by parameter name, in the order the checkpoint lists them (module order).
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
}

impl StateDict {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }
}

impl IntoIterator for StateDict {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Reads a file whose pickled object is itself the state dict.
pub fn read_state_dict(path: &Path) -> Result<StateDict, TorchReadError> {
    read_state_dict_at(path, &[])
}

/// Reads the state dict found by following `at` through nested dicts, e.g.
/// `&["state_dict"]` (Lightning) or `&["model"]`. `&[]` means the top level.
/// Only the storages of the chosen dict are read.
pub fn read_state_dict_at(path: &Path, at: &[&str]) -> Result<StateDict, TorchReadError> {
    let mut checkpoint = Checkpoint::open(path)?;
    let root = std::mem::replace(&mut checkpoint.root, Value::None);
    let not_state_dict = |depth: usize, detail: String| TorchReadError::NotStateDict {
        path: path.to_path_buf(),
        at: describe(&at[..depth]),
        detail,
    };

    let mut node = &root;
    for (depth, key) in at.iter().enumerate() {
        if !matches!(node, Value::Dict(_)) {
            return Err(not_state_dict(
                depth,
                format!("{}, not a dict", node.kind()),
            ));
        }
        node = node.get(key).ok_or_else(|| {
            not_state_dict(depth, format!("no key {key:?}; keys: {}", dict_keys(node)))
        })?;
    }
    let Value::Dict(items) = node else {
        return Err(not_state_dict(
            at.len(),
            format!("{}, not a dict", node.kind()),
        ));
    };

    // Check every entry before reading any storage, so a checkpoint wrapper fails fast
    // with a hint at where the weights are.
    let mut tensors = Vec::with_capacity(items.len());
    for (key, value) in items {
        let Value::Str(name) = key else {
            return Err(not_state_dict(
                at.len(),
                format!("a key is {}, not a str", key.kind()),
            ));
        };
        match value {
            Value::Tensor(tref) => tensors.push((name, tref)),
            other => {
                return Err(not_state_dict(
                    at.len(),
                    format!(
                        "entry {name:?} is {}, not a tensor{}",
                        other.kind(),
                        nested_hint(at, items)
                    ),
                ));
            }
        }
    }

    let mut state = StateDict::default();
    for (name, tref) in tensors {
        let little_endian = checkpoint.little_endian;
        let bytes = checkpoint.storage(path, &tref.storage)?;
        let tensor = tensor::materialise(tref, bytes, little_endian).map_err(|detail| {
            TorchReadError::Tensor {
                path: path.to_path_buf(),
                name: name.clone(),
                detail,
            }
        })?;
        if state
            .index
            .insert(name.clone(), state.entries.len())
            .is_some()
        {
            return Err(not_state_dict(
                at.len(),
                format!("key {name:?} appears twice"),
            ));
        }
        state.entries.push((name.clone(), tensor));
    }
    Ok(state)
}

/// Names the dict-valued entries of a checkpoint wrapper as `read_state_dict_at` paths.
fn nested_hint(at: &[&str], items: &[(Value, Value)]) -> String {
    let paths: Vec<String> = items
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Dict(_)) => {
                let mut path = at.to_vec();
                path.push(k);
                Some(format!("&{path:?}"))
            }
            _ => None,
        })
        .collect();
    if paths.is_empty() {
        String::new()
    } else {
        format!(
            "; nested dicts that read_state_dict_at can pick: {}",
            paths.join(", ")
        )
    }
}

fn describe(at: &[&str]) -> String {
    if at.is_empty() {
        "the top level".to_string()
    } else {
        format!("{at:?}")
    }
}

fn dict_keys(value: &Value) -> String {
    let Value::Dict(items) = value else {
        return String::new();
    };
    let keys: Vec<String> = items
        .iter()
        .take(20)
        .map(|(k, v)| match k {
            Value::Str(s) => format!("{s:?} ({})", v.kind()),
            other => format!("<{}>", other.kind()),
        })
        .collect();
    let more = items.len().saturating_sub(20);
    if more > 0 {
        format!("{} and {more} more", keys.join(", "))
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests;
