//! The one error type of the reader. Every variant names the file, so a failure deep inside
//! a checkpoint still says which of several weight files it came from.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TorchReadError {
    #[error("cannot read PyTorch file: {source}: {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read PyTorch zip archive: {source}: {path}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },

    /// Neither the zip container (torch >= 1.6) nor the legacy pickle sequence.
    #[error("not a PyTorch checkpoint: {detail}: {path}")]
    NotCheckpoint { path: PathBuf, detail: String },

    /// The file ends before a pickle, a length field or a storage does.
    #[error("truncated PyTorch file: {detail}: {path}")]
    Truncated { path: PathBuf, detail: String },

    /// An opcode outside the subset state dicts need (protocols 2 to 4 without objects).
    #[error("unsupported pickle opcode {name} (0x{code:02x}) at byte {offset} of {pickle}: {path}")]
    UnsupportedOpcode {
        path: PathBuf,
        pickle: String,
        offset: usize,
        code: u8,
        name: &'static str,
    },

    /// A class or function the reader does not model; usually a pickled `nn.Module`
    /// (`torch.save(model)`) instead of `torch.save(model.state_dict())`.
    #[error("unsupported pickle global {module}.{name} in {pickle}: {path}")]
    UnsupportedGlobal {
        path: PathBuf,
        pickle: String,
        module: String,
        name: String,
    },

    /// The pickle stream is well formed opcode-wise but its values do not fit together
    /// (stack underflow, a shape that is not a tuple of ints, ...).
    #[error("malformed pickle {pickle} at byte {offset}: {detail}: {path}")]
    Malformed {
        path: PathBuf,
        pickle: String,
        offset: usize,
        detail: String,
    },

    #[error("bad storage {key:?}: {detail}: {path}")]
    Storage {
        path: PathBuf,
        key: String,
        detail: String,
    },

    #[error("bad tensor {name:?}: {detail}: {path}")]
    Tensor {
        path: PathBuf,
        name: String,
        detail: String,
    },

    /// The pickled object (or the entry picked with `read_state_dict_at`) is not a dict of
    /// tensors.
    #[error("no state dict at {at}: {detail}: {path}")]
    NotStateDict {
        path: PathBuf,
        at: String,
        detail: String,
    },
}
