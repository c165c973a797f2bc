//! Writing a trained model's entry into a `manifest.toml`, keeping the file's comments and
//! other entries as they are (toml_edit), and checking the result loads as the runtime loads it.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use crate::detector::Manifest;
use crate::detector::manifest::sha256_file;

/// Why the manifest could not be updated; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestWriteError {
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path} is not valid TOML: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{path}: `model` is not an array of tables")]
    Shape { path: PathBuf },
    #[error("the updated {path} does not load: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// A tensor as the manifest declares it.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Everything a trained model's entry holds.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub name: String,
    pub family: String,
    pub description: String,
    pub source: String,
    /// The ONNX file first, then any others; absolute or relative to the current folder.
    pub files: Vec<PathBuf>,
    pub inputs: Vec<TensorEntry>,
    pub outputs: Vec<TensorEntry>,
    pub threshold: f32,
    /// Extra `[model.settings]` (quantization facts, metrics).
    pub settings: Table,
}

/// Inserts `entry` into the manifest at `path` (creating the file if needed), replacing an
/// entry of the same name. File paths are written relative to the manifest's folder when they
/// lie under it, with their sha256.
pub fn upsert(path: &Path, entry: &ModelEntry) -> Result<(), ManifestWriteError> {
    let io = |detail: String| ManifestWriteError::Io {
        path: path.to_path_buf(),
        detail,
    };
    let is_new = !path.exists();
    let text = if is_new {
        String::new()
    } else {
        std::fs::read_to_string(path).map_err(|e| io(e.to_string()))?
    };
    let mut document: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| ManifestWriteError::Parse {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let folder = std::fs::canonicalize(folder).map_err(|e| io(e.to_string()))?;
    let table = entry_table(entry, &folder).map_err(io)?;
    let models = document
        .entry("model")
        .or_insert(Item::ArrayOfTables(Default::default()))
        .as_array_of_tables_mut()
        .ok_or_else(|| ManifestWriteError::Shape {
            path: path.to_path_buf(),
        })?;
    let existing = models
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(entry.name.as_str()));
    match existing.and_then(|index| models.get_mut(index)) {
        Some(slot) => *slot = table,
        None => models.push(table),
    }
    let mut updated = document.to_string();
    if is_new {
        updated.insert_str(
            0,
            "# Models trained by vigil-train. Paths are relative to this folder.\n\n",
        );
    }
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, &updated).map_err(|e| io(e.to_string()))?;
    // Refuse to leave behind a manifest the runtime would reject.
    if let Err(err) = Manifest::load(&temporary) {
        let _ = std::fs::remove_file(&temporary);
        return Err(ManifestWriteError::Invalid {
            path: path.to_path_buf(),
            detail: err.to_string(),
        });
    }
    std::fs::rename(&temporary, path).map_err(|e| io(e.to_string()))
}

fn entry_table(entry: &ModelEntry, folder: &Path) -> Result<Table, String> {
    let mut table = Table::new();
    table.insert("name", value(&entry.name));
    table.insert("family", value(&entry.family));
    table.insert("description", value(&entry.description));
    table.insert("source", value(&entry.source));
    let mut files = Array::new();
    for file in &entry.files {
        let absolute =
            std::fs::canonicalize(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let sha256 = sha256_file(&absolute).map_err(|e| format!("{}: {e}", file.display()))?;
        let shown = absolute.strip_prefix(folder).unwrap_or(&absolute);
        let mut spec = InlineTable::new();
        spec.insert("path", shown.display().to_string().into());
        spec.insert("sha256", sha256.into());
        files.push(Value::InlineTable(spec));
    }
    table.insert("files", value(files));
    table.insert("inputs", value(tensors(&entry.inputs)));
    table.insert("outputs", value(tensors(&entry.outputs)));
    table.insert("threshold", value(f64::from(entry.threshold)));
    if !entry.settings.is_empty() {
        table.insert("settings", Item::Table(entry.settings.clone()));
    }
    Ok(table)
}

fn tensors(list: &[TensorEntry]) -> Array {
    let mut array = Array::new();
    for tensor in list {
        let mut spec = InlineTable::new();
        spec.insert("name", tensor.name.as_str().into());
        spec.insert("dtype", "f32".into());
        let shape: Array = tensor.shape.iter().map(|d| *d as i64).collect();
        spec.insert("shape", Value::Array(shape));
        array.push(Value::InlineTable(spec));
    }
    array
}
