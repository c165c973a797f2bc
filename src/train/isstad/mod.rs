//! ISSTAD-edge (arXiv 2303.17354): a ViT masked autoencoder trained on normal images (stage 1),
//! then a decoder with a shared pixel-classification head after every block and a
//! reconstruction head, trained on self-made corruptions with the encoder frozen (stage 2).
//!
//! The encoder is either that scratch MAE or, as the paper has it, a pretrained network frozen
//! from the start ([`pretrained`]: ImageNet MobileNetV2, no stage 1).
//!
//! Data flow: [`mvtec`] reads MVTec AD layout folders (and [`make_data`] writes them from real
//! textures), [`corrupt`] makes stage 2's corrupted images and pixel labels.

pub mod corrupt;
pub mod export;
pub mod losses;
pub mod make_data;
pub mod model;
pub mod mvtec;
pub mod pipeline;
pub mod pretrained;
pub mod train;
