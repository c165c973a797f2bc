//! What every family's training loop shares: one optimisation pass over a list of batches,
//! checkpoints of the selected epoch, and a per-epoch CSV in the run folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::TrainError;
use super::run::RunDir;

/// One pass over `batches`. For each, `loss` gives the loss terms (the first is the total the
/// optimizer steps on; the rest are its parts, for the log) and how many samples it held;
/// `learning_rate` gives the rate for the pass's n-th step. Returns the model, every term's
/// mean over the batches, and samples per second. A non-finite loss stops the run.
pub fn train_epoch<M: Module, B>(
    mut model: M,
    optimizer: &mut ModuleOptimizer,
    batches: Vec<B>,
    learning_rate: impl Fn(usize) -> f64,
    epoch: usize,
    loss: impl Fn(&M, B) -> (Vec<Tensor<1>>, usize),
) -> Result<(M, Vec<f64>, f64), TrainError> {
    let clock = Instant::now();
    let mut sums: Vec<f64> = Vec::new();
    let (mut steps, mut samples) = (0usize, 0usize);
    for batch in batches {
        let (mut terms, size) = loss(&model, batch);
        let values = terms.iter().map(scalar).collect::<Result<Vec<f64>, _>>()?;
        let Some(&total) = values.first() else {
            return Err(TrainError::Config("the loss gave no terms".into()));
        };
        if !total.is_finite() {
            return Err(TrainError::Diverged { epoch, loss: total });
        }
        let grads = GradientsParams::from_grads(terms.swap_remove(0).backward(), &model);
        model = optimizer.step(learning_rate(steps), model, grads);
        sums.resize(values.len(), 0.0);
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum += value;
        }
        steps += 1;
        samples += size;
    }
    let means = sums.iter().map(|s| s / steps.max(1) as f64).collect();
    let rate = samples as f64 / clock.elapsed().as_secs_f64().max(1e-9);
    Ok((model, means, rate))
}

/// A scalar tensor's value on the host.
pub fn scalar(t: &Tensor<1>) -> Result<f64, TrainError> {
    t.clone()
        .try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// Writes a module's weights (burn's binary record).
pub fn save<M: Module>(module: &M, path: &Path) -> Result<(), TrainError> {
    module
        .clone()
        .save_file(path)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
}

/// A CSV of per-epoch numbers in the run folder.
pub struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    pub fn create(run: &RunDir, name: &str, header: &str) -> Result<Self, TrainError> {
        let path = run.file(name);
        let mut file = std::fs::File::create(&path)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        writeln!(file, "{header}")
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        Ok(Self { file, path })
    }

    pub fn row(&mut self, row: &str) -> Result<(), TrainError> {
        writeln!(self.file, "{row}")
            .map_err(|e| TrainError::Config(format!("{}: {e}", self.path.display())))
    }
}
