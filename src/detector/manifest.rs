//! `models/manifest.toml`: every model vigil can load, with the sha256 of each file, the
//! tensors it exchanges and how its inputs are prepared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DetectorError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model", default)]
    pub models: Vec<ModelSpec>,
    /// Folder the manifest was read from; file paths are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One model: its files, tensors and decision defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    /// The model family that prepares its inputs and decides on its outputs.
    pub family: String,
    pub description: String,
    /// Where the files come from and under which licence.
    pub source: String,
    /// The command that fetches the files when they are not committed.
    #[serde(default)]
    pub fetch: Option<String>,
    /// The ONNX graph, then any external-data or label files it needs.
    pub files: Vec<FileSpec>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Family-specific settings (labels file, preprocessing), kept as TOML for the family.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// Default decision threshold, fitted on validation data where the model card says so.
    pub threshold: f32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: PathBuf,
    pub sha256: String,
}

/// Element type of a tensor at the model boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    F32,
    U8,
    I8,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Name of the tensor in the ONNX graph.
    pub name: String,
    /// Name vigil uses for it, when the graph's name is an internal one.
    #[serde(default)]
    pub alias: Option<String>,
    pub dtype: ElementType,
    pub shape: Vec<usize>,
    /// Affine quantization `real = scale * (q - zero_point)` of an integer tensor.
    #[serde(default)]
    pub scale: Option<f32>,
    #[serde(default)]
    pub zero_point: Option<i32>,
}

impl TensorSpec {
    pub fn label(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

impl Manifest {
    /// Reads and parses a manifest; unknown keys are errors that name the key.
    pub fn load(path: &Path) -> Result<Self, DetectorError> {
        let text = std::fs::read_to_string(path).map_err(|err| DetectorError::Io {
            detail: err.to_string(),
            path: path.to_path_buf(),
        })?;
        let mut manifest: Manifest =
            toml::from_str(&text).map_err(|err| DetectorError::Manifest {
                detail: err.to_string(),
                path: path.to_path_buf(),
            })?;
        manifest.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        manifest.check(path)?;
        Ok(manifest)
    }

    /// The manifest shipped with the crate, `models/manifest.toml`.
    pub fn shipped() -> Result<Self, DetectorError> {
        Self::load(&Self::shipped_path())
    }

    pub fn shipped_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/manifest.toml")
    }

    fn check(&self, path: &Path) -> Result<(), DetectorError> {
        let mut seen = std::collections::BTreeSet::new();
        for model in &self.models {
            let problem = if !seen.insert(model.name.as_str()) {
                Some("appears twice".to_string())
            } else if model.files.is_empty() {
                Some("lists no files".to_string())
            } else if model.inputs.is_empty() || model.outputs.is_empty() {
                Some("must declare its inputs and outputs".to_string())
            } else {
                model
                    .files
                    .iter()
                    .find(|f| {
                        f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit())
                    })
                    .map(|f| format!("has a malformed sha256 for {}", f.path.display()))
            };
            if let Some(detail) = problem {
                return Err(DetectorError::Manifest {
                    detail: format!("model {}: {detail}", model.name),
                    path: path.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    pub fn model(&self, name: &str) -> Result<&ModelSpec, DetectorError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| DetectorError::UnknownModel {
                name: name.to_string(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Absolute path of a file listed by a model.
    pub fn path_of(&self, file: &FileSpec) -> PathBuf {
        self.dir.join(&file.path)
    }
}

impl ModelSpec {
    pub fn onnx_file(&self) -> &FileSpec {
        // `check` refused a model without files.
        &self.files[0]
    }

    pub fn output(&self, label: &str) -> Option<(usize, &TensorSpec)> {
        self.outputs
            .iter()
            .enumerate()
            .find(|(_, t)| t.label() == label)
    }

    pub fn setting_str(&self, key: &str) -> Option<&str> {
        self.settings.get(key).and_then(toml::Value::as_str)
    }
}

/// Hex sha256 of a file; the error names the file.
pub fn sha256_file(path: &Path) -> Result<String, DetectorError> {
    super::digest::sha256_file(path).map_err(|err| DetectorError::Io {
        detail: err.to_string(),
        path: path.to_path_buf(),
    })
}

/// Verifies every file of a model against the manifest before anything parses it.
pub fn verify_files(manifest: &Manifest, model: &ModelSpec) -> Result<(), DetectorError> {
    for file in &model.files {
        let path = manifest.path_of(file);
        if !path.exists() {
            return Err(DetectorError::MissingFile {
                model: model.name.clone(),
                fetch: model
                    .fetch
                    .clone()
                    .unwrap_or_else(|| "it ships with vigil".into()),
                path,
            });
        }
        let got = sha256_file(&path)?;
        if !got.eq_ignore_ascii_case(&file.sha256) {
            return Err(DetectorError::Sha256Mismatch {
                model: model.name.clone(),
                expected: file.sha256.clone(),
                got,
                path,
            });
        }
    }
    Ok(())
}
