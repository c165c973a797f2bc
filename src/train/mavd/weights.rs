//! The authors' published MAVD heads (`saved_models/ap86.07/*.pth`, MIT) loaded into
//! [`Mavd`], with every tensor of every file accounted for.
//!
//! A port that silently skips a tensor, or fills a layer from the wrong one, still runs and
//! still gives scores in (0, 1); only bookkeeping catches it. Each file is read through a
//! [`Ledger`] that hands out tensors by key with their expected shape and, at the end, refuses
//! any key nobody asked for. The fusion file lists each TCN convolution twice (as `conv1` and
//! as `net.0`, the same module registered under two names); the second name must hold the same
//! values, and is counted as an alias rather than ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::nn::conv::Conv1d;
use burn::prelude::*;

use super::model::{CausalConv, Encoder, Mavd, MavdConfig, MilRegressor, Projection};
use crate::io::pytorch::{StateDict, TorchReadError, read_state_dict};
use crate::train::nn::LayerNorm;

/// The file of each part in the authors' `saved_models/ap86.07/` folder.
pub const VIDEO_FILE: &str = "v_model.pth";
pub const AUDIO_FILE: &str = "a_model.pth";
pub const FLOW_FILE: &str = "f_model.pth";
pub const AUDIO_PROJECTION_FILE: &str = "va_model.pth";
pub const FLOW_PROJECTION_FILE: &str = "vf_model.pth";
pub const FUSION_FILE: &str = "vaf_model.pth";

/// Why the authors' weights could not be loaded. Each names the file and, where it applies,
/// the tensor.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Read(#[from] TorchReadError),
    #[error("{file}: tensor {key:?} is missing (another model, or a damaged file?)")]
    Missing { file: PathBuf, key: String },
    #[error("{file}: tensor {key:?} has shape {found:?}, the configured model needs {expected:?}")]
    Shape {
        file: PathBuf,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{file}: {key:?} should repeat {original:?} (one module under two names) but differs")]
    AliasDiffers {
        file: PathBuf,
        key: String,
        original: String,
    },
    #[error("{file}: {} tensor(s) the model does not use: {}", .keys.len(), .keys.join(", "))]
    Unused { file: PathBuf, keys: Vec<String> },
}

/// What one file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub file: PathBuf,
    /// Tensors loaded into the model.
    pub loaded: usize,
    /// Their values in all.
    pub parameters: usize,
    /// Tensors checked equal to one already loaded (the TCN's second names).
    pub aliases: usize,
}

/// Hands out the tensors of one state dict and remembers which were taken.
pub struct Ledger<'a> {
    file: &'a Path,
    dict: &'a StateDict,
    taken: BTreeSet<String>,
    parameters: usize,
    aliases: usize,
    device: &'a Device,
}

impl<'a> Ledger<'a> {
    pub fn new(file: &'a Path, dict: &'a StateDict, device: &'a Device) -> Self {
        Self {
            file,
            dict,
            taken: BTreeSet::new(),
            parameters: 0,
            aliases: 0,
            device,
        }
    }

    fn found(&self, key: &str, shape: &[usize]) -> Result<&[f32], WeightsError> {
        let tensor = self.dict.get(key).ok_or_else(|| WeightsError::Missing {
            file: self.file.to_path_buf(),
            key: key.to_string(),
        })?;
        if tensor.shape != shape {
            return Err(WeightsError::Shape {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                found: tensor.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        Ok(&tensor.data)
    }

    /// The tensor `key`, which must have `shape`.
    pub fn take<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, WeightsError> {
        let values = self.found(key, &shape)?.to_vec();
        self.taken.insert(key.to_string());
        self.parameters += values.len();
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    /// Checks that `key` holds exactly the values of `original` (already taken).
    pub fn alias(&mut self, key: &str, original: &str) -> Result<(), WeightsError> {
        let shape = self
            .dict
            .get(original)
            .map(|t| t.shape.clone())
            .unwrap_or_default();
        let original_values = self.found(original, &shape)?;
        if self.found(key, &shape)? != original_values {
            return Err(WeightsError::AliasDiffers {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                original: original.to_string(),
            });
        }
        self.taken.insert(key.to_string());
        self.aliases += 1;
        Ok(())
    }

    /// A PyTorch `nn.Linear` (`weight` is `[out, in]`; burn keeps `[in, out]`).
    pub fn linear(&mut self, prefix: &str, linear: &mut Linear) -> Result<(), WeightsError> {
        let [input, output] = linear.weight.dims();
        let weight = self.take(&format!("{prefix}.weight"), [output, input])?;
        linear.weight = Param::from_tensor(weight.transpose());
        if linear.bias.is_some() {
            linear.bias = Some(Param::from_tensor(
                self.take(&format!("{prefix}.bias"), [output])?,
            ));
        }
        Ok(())
    }

    /// A PyTorch `nn.Conv1d` with bias (`[out, in, kernel]`, the same layout as burn's).
    pub fn conv1d(&mut self, prefix: &str, conv: &mut Conv1d) -> Result<(), WeightsError> {
        let shape = conv.weight.dims();
        conv.weight = Param::from_tensor(self.take(&format!("{prefix}.weight"), shape)?);
        conv.bias = Some(Param::from_tensor(
            self.take(&format!("{prefix}.bias"), [shape[0]])?,
        ));
        Ok(())
    }

    /// A PyTorch `nn.LayerNorm`.
    pub fn layer_norm(&mut self, prefix: &str, norm: &mut LayerNorm) -> Result<(), WeightsError> {
        let shape = norm.gamma.dims();
        norm.gamma = Param::from_tensor(self.take(&format!("{prefix}.weight"), shape)?);
        norm.beta = Param::from_tensor(self.take(&format!("{prefix}.bias"), shape)?);
        Ok(())
    }

    /// A `weight_norm`-ed `nn.Conv1d` (`weight_g` is `[out, 1, 1]`, `weight_v` `[out, in, k]`).
    pub fn causal_conv(&mut self, prefix: &str, conv: &mut CausalConv) -> Result<(), WeightsError> {
        let shape = conv.direction.dims();
        let out = shape[0];
        conv.direction = Param::from_tensor(self.take(&format!("{prefix}.weight_v"), shape)?);
        let magnitude: Tensor<3> = self.take(&format!("{prefix}.weight_g"), [out, 1, 1])?;
        conv.magnitude = Param::from_tensor(magnitude.reshape([out]));
        conv.bias = Param::from_tensor(self.take(&format!("{prefix}.bias"), [out])?);
        Ok(())
    }

    /// Every key taken or aliased, or the list of those left over.
    pub fn finish(self) -> Result<FileReport, WeightsError> {
        let unused: Vec<String> = self
            .dict
            .keys()
            .filter(|key| !self.taken.contains(*key))
            .map(str::to_string)
            .collect();
        if !unused.is_empty() {
            return Err(WeightsError::Unused {
                file: self.file.to_path_buf(),
                keys: unused,
            });
        }
        Ok(FileReport {
            file: self.file.to_path_buf(),
            loaded: self.taken.len() - self.aliases,
            parameters: self.parameters,
            aliases: self.aliases,
        })
    }
}

fn mil(ledger: &mut Ledger, prefix: &str, mil: &mut MilRegressor) -> Result<(), WeightsError> {
    // nn.Sequential(Linear, ReLU, Dropout, Linear, Dropout, Linear, Sigmoid).
    ledger.linear(&format!("{prefix}.0"), &mut mil.fc1)?;
    ledger.linear(&format!("{prefix}.3"), &mut mil.fc2)?;
    ledger.linear(&format!("{prefix}.5"), &mut mil.fc3)
}

/// `v_net`, `a_net` or `f_net` (the authors' `Unimodal`).
pub fn load_encoder(ledger: &mut Ledger, encoder: &mut Encoder) -> Result<(), WeightsError> {
    ledger.conv1d("embedding.conv_1.0", &mut encoder.embedding)?;
    for (index, layer) in encoder.layers.iter_mut().enumerate() {
        // Each transformer layer is [PreNorm(Attention), PreNorm(FeedForward)].
        let attention = format!("selfatt.layers.{index}.0");
        ledger.layer_norm(&format!("{attention}.norm"), &mut layer.attention_norm)?;
        ledger.linear(
            &format!("{attention}.fn.to_qkv"),
            &mut layer.attention.to_qkvt,
        )?;
        ledger.linear(
            &format!("{attention}.fn.to_out.0"),
            &mut layer.attention.to_out,
        )?;
        let feed_forward = format!("selfatt.layers.{index}.1");
        ledger.layer_norm(
            &format!("{feed_forward}.norm"),
            &mut layer.feed_forward_norm,
        )?;
        // nn.Sequential(Linear, GELU, Dropout, Linear, Dropout).
        ledger.linear(
            &format!("{feed_forward}.fn.net.0"),
            &mut layer.feed_forward1,
        )?;
        ledger.linear(
            &format!("{feed_forward}.fn.net.3"),
            &mut layer.feed_forward2,
        )?;
    }
    mil(ledger, "mil.regressor", &mut encoder.mil)
}

/// `va_net` or `vf_net`: nn.Sequential of (Linear, ReLU, Dropout) × depth.
pub fn load_projection(
    ledger: &mut Ledger,
    projection: &mut Projection,
) -> Result<(), WeightsError> {
    for (index, layer) in projection.layers.iter_mut().enumerate() {
        ledger.linear(&format!("regressor.{}", 3 * index), layer)?;
    }
    Ok(())
}

/// `vaf_net`: embedding MLP, TCN (each convolution also listed under `net.0` / `net.4`),
/// MIL regressor.
pub fn load_fusion(ledger: &mut Ledger, mavd: &mut Mavd) -> Result<(), WeightsError> {
    let fusion = &mut mavd.fusion;
    ledger.linear("embedding.0", &mut fusion.embed1)?;
    ledger.linear("embedding.3", &mut fusion.embed2)?;
    for (index, block) in fusion.tcn.iter_mut().enumerate() {
        let prefix = format!("tcn.tcn.network.{index}");
        ledger.causal_conv(&format!("{prefix}.conv1"), &mut block.conv1)?;
        ledger.causal_conv(&format!("{prefix}.conv2"), &mut block.conv2)?;
        // TemporalBlock.net = Sequential(conv1, chomp, relu, dropout, conv2, ...).
        for (alias, original) in [("net.0", "conv1"), ("net.4", "conv2")] {
            for tensor in ["bias", "weight_g", "weight_v"] {
                ledger.alias(
                    &format!("{prefix}.{alias}.{tensor}"),
                    &format!("{prefix}.{original}.{tensor}"),
                )?;
            }
        }
    }
    mil(ledger, "mil.regressor", &mut fusion.mil)
}

/// Loads the six files of `folder` into a model of `config`, refusing missing, misshapen or
/// unused tensors. Returns the model and one report per file.
pub fn load_authors(
    folder: &Path,
    config: &MavdConfig,
    device: &Device,
) -> Result<(Mavd, Vec<FileReport>), WeightsError> {
    let mut mavd = config.init(device);
    let mut reports = Vec::with_capacity(6);
    let mut read = |name: &str,
                    mavd: &mut Mavd,
                    load: &dyn Fn(&mut Ledger, &mut Mavd) -> Result<(), WeightsError>|
     -> Result<(), WeightsError> {
        let file = folder.join(name);
        let dict = read_state_dict(&file)?;
        let mut ledger = Ledger::new(&file, &dict, device);
        load(&mut ledger, mavd)?;
        reports.push(ledger.finish()?);
        Ok(())
    };
    read(VIDEO_FILE, &mut mavd, &|l, m| load_encoder(l, &mut m.video))?;
    read(AUDIO_FILE, &mut mavd, &|l, m| load_encoder(l, &mut m.audio))?;
    read(FLOW_FILE, &mut mavd, &|l, m| load_encoder(l, &mut m.flow))?;
    read(AUDIO_PROJECTION_FILE, &mut mavd, &|l, m| {
        load_projection(l, &mut m.audio_projection)
    })?;
    read(FLOW_PROJECTION_FILE, &mut mavd, &|l, m| {
        load_projection(l, &mut m.flow_projection)
    })?;
    read(FUSION_FILE, &mut mavd, &load_fusion)?;
    Ok((mavd, reports))
}
