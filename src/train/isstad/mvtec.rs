//! Reading one MVTec AD category folder:
//!
//! ```text
//! <category>/train/good/*.png                       normal training images
//! <category>/test/good/*.png                        normal test images
//! <category>/test/<defect>/*.png                    defective test images, one folder per defect type
//! <category>/ground_truth/<defect>/<stem>_mask.png  0/255 grey mask of test/<defect>/<stem>.png
//! ```
//!
//! Every list is sorted by file name and every mask is found from its image's name. The paper's
//! code lists folders in directory walk order and pairs images with masks by position, which
//! pairs the wrong files on file systems (ext4) whose walk order is not the name order.
//!
//! A plant's own set is often labelled per image only: good parts and rejected parts, no
//! outlines. A category with no `ground_truth` folder at all is such a set
//! ([`MvtecCategory::pixel_labels`] false): its defect images have no mask and only image-level
//! metrics can be computed on it. A category that has `ground_truth` must have a mask for every
//! defect image; a half-labelled set is a mistake, not a choice, and is refused.
//! [`read_good_folder`] reads a plain folder of good images, for fitting on or checking.

use std::path::{Path, PathBuf};

use crate::train::image::{Crop, ImageError, Rgb8, normalised_chw, read_png, resample_plane};

/// The class name MVTec AD gives normal images.
pub const GOOD: &str = "good";

/// Why a category folder or one of its images cannot be used; names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum MvtecError {
    #[error("cannot list folder {path}: {detail}")]
    List { path: PathBuf, detail: String },
    #[error("not an MVTec AD category: the {what} folder is missing: {path}")]
    MissingFolder { what: &'static str, path: PathBuf },
    #[error("no PNG images in class folder {path}")]
    EmptyClass { path: PathBuf },
    #[error("defect image has no mask (expected {expected}): {image}")]
    MissingMask { image: PathBuf, expected: PathBuf },
    #[error("mask has no image (expected {expected}): {mask}")]
    OrphanMask { mask: PathBuf, expected: PathBuf },
    #[error(
        "mask is {mask_width}x{mask_height} but its image is {image_width}x{image_height}: {mask}"
    )]
    MaskSize {
        mask: PathBuf,
        mask_width: usize,
        mask_height: usize,
        image_width: usize,
        image_height: usize,
    },
    #[error("{what} must be {expected}, got {got}")]
    BadArgument {
        what: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("mask file name does not end in _mask.png: {mask}")]
    MaskName { mask: PathBuf },
    #[error("too few training images to take every {every}th for validation: {root}")]
    TooFewForValidation { root: PathBuf, every: usize },
    #[error(
        "a folder of good images needs at least 2 PNG images (some to fit on, some to check), \
         found {found}: {path}"
    )]
    TooFewImages { path: PathBuf, found: usize },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// One test image, its class and, for a defect, its ground-truth mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    pub image: PathBuf,
    /// [`GOOD`] or the defect type (the name of the folder under `test/`).
    pub defect: String,
    /// `ground_truth/<defect>/<stem>_mask.png`; `None` for good images and for every image of
    /// an image-level category.
    pub mask: Option<PathBuf>,
}

impl TestImage {
    pub fn is_good(&self) -> bool {
        self.defect == GOOD
    }
}

/// The files of one category: training images (all normal) and labelled test images.
#[derive(Debug, Clone)]
pub struct MvtecCategory {
    pub root: PathBuf,
    /// `train/good/*.png`, sorted by name.
    pub train: Vec<PathBuf>,
    /// Sorted by class folder name, then by file name.
    pub test: Vec<TestImage>,
    /// Whether defect images have ground-truth masks (the category has a `ground_truth`
    /// folder). Without them pixel AUROC and AUPRO cannot be computed: the set is labelled
    /// per image only.
    pub pixel_labels: bool,
}

/// Lists a category folder and pairs each defect image with its mask by name.
///
/// Fails when `train/good` or `test` is missing, when a class folder has no PNG, when the
/// category has a `ground_truth` folder and a defect image has no mask in it, or when a mask
/// has no image; only files ending in `.png` count, so stray files such as `.DS_Store` are
/// ignored. Without a `ground_truth` folder the category is image-level only: every mask is
/// `None` and [`MvtecCategory::pixel_labels`] is false.
pub fn read_category(root: &Path) -> Result<MvtecCategory, MvtecError> {
    let train_good = root.join("train").join(GOOD);
    if !train_good.is_dir() {
        return Err(MvtecError::MissingFolder {
            what: "train/good",
            path: train_good,
        });
    }
    let train = list_pngs(&train_good)?;
    if train.is_empty() {
        return Err(MvtecError::EmptyClass { path: train_good });
    }

    let test_root = root.join("test");
    if !test_root.is_dir() {
        return Err(MvtecError::MissingFolder {
            what: "test",
            path: test_root,
        });
    }
    let classes = list_dirs(&test_root)?;
    if classes.is_empty() {
        return Err(MvtecError::EmptyClass { path: test_root });
    }
    let ground_truth = root.join("ground_truth");
    // Absent entirely: labelled per image only. Present (even as a stray file): every defect
    // image must have its mask there.
    let pixel_labels = ground_truth.exists();
    let mut test = Vec::new();
    for class_dir in &classes {
        let defect = file_name(class_dir);
        let images = list_pngs(class_dir)?;
        if images.is_empty() {
            return Err(MvtecError::EmptyClass {
                path: class_dir.clone(),
            });
        }
        for image in images {
            let mask = if defect == GOOD || !pixel_labels {
                None
            } else {
                let expected = mask_path(&ground_truth, &defect, &image);
                if !expected.is_file() {
                    return Err(MvtecError::MissingMask { image, expected });
                }
                Some(expected)
            };
            test.push(TestImage {
                image,
                defect: defect.clone(),
                mask,
            });
        }
    }

    // Every mask must belong to an image: a mask without one usually means a renamed or
    // deleted image, and the set would silently lose a labelled defect.
    if ground_truth.is_dir() {
        let paired: std::collections::HashSet<&Path> =
            test.iter().filter_map(|t| t.mask.as_deref()).collect();
        for mask_dir in list_dirs(&ground_truth)? {
            let defect = file_name(&mask_dir);
            for mask in list_pngs(&mask_dir)? {
                let stem = mask
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(image_stem) = stem.strip_suffix("_mask") else {
                    return Err(MvtecError::MaskName { mask });
                };
                let expected = test_root.join(&defect).join(format!("{image_stem}.png"));
                if !paired.contains(mask.as_path()) {
                    return Err(MvtecError::OrphanMask { mask, expected });
                }
            }
        }
    }

    Ok(MvtecCategory {
        root: root.to_path_buf(),
        train,
        test,
        pixel_labels,
    })
}

/// The PNG images of a plain folder of good images (say, parts a plant has passed), sorted by
/// name. Files not ending in `.png` and hidden files are ignored; sub-folders are not entered.
/// Fails when the folder is missing or holds fewer than two images: one image cannot be split
/// into some to fit on and some to check.
pub fn read_good_folder(dir: &Path) -> Result<Vec<PathBuf>, MvtecError> {
    if !dir.is_dir() {
        return Err(MvtecError::MissingFolder {
            what: "good images",
            path: dir.to_path_buf(),
        });
    }
    let images = list_pngs(dir)?;
    if images.len() < 2 {
        return Err(MvtecError::TooFewImages {
            path: dir.to_path_buf(),
            found: images.len(),
        });
    }
    Ok(images)
}

impl MvtecCategory {
    /// Splits the training images into (train, validation): every `every`-th image in name
    /// order (indices `every-1, 2·every-1, …`) goes to validation, the rest stay for training.
    ///
    /// ISSTAD fits its decision threshold on normal images the model never trained on, and
    /// MVTec AD has no validation split. Interleaving rather than taking the last fraction
    /// spreads validation over the whole capture session, since MVTec's numbering follows
    /// capture order and lighting drifts over it. Deterministic: the same folder gives the
    /// same split on every machine.
    pub fn split_validation(
        &self,
        every: usize,
    ) -> Result<(Vec<PathBuf>, Vec<PathBuf>), MvtecError> {
        if every < 2 {
            return Err(MvtecError::BadArgument {
                what: "the validation interval",
                expected: "at least 2",
                got: every,
            });
        }
        let (mut train, mut validation) = (Vec::new(), Vec::new());
        for (index, path) in self.train.iter().enumerate() {
            if index % every == every - 1 {
                validation.push(path.clone());
            } else {
                train.push(path.clone());
            }
        }
        if validation.is_empty() {
            return Err(MvtecError::TooFewForValidation {
                root: self.root.clone(),
                every,
            });
        }
        Ok((train, validation))
    }
}

/// Reads a PNG as a `3·size·size` CHW tensor in [-1, 1] (mean 0.5, std 0.5 per channel).
///
/// The resize is bilinear with half-pixel centres and no antialiasing, as
/// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)`
/// on the image as a float tensor. Grey PNGs are replicated to three channels and alpha is
/// dropped (by [`read_png`]), so any PNG MVTec AD ships reads as RGB. A truncated or corrupt
/// PNG fails with an error naming the file.
pub fn load_rgb(path: &Path, size: usize) -> Result<Vec<f32>, MvtecError> {
    check_size(size)?;
    let image = read_png(path)?;
    Ok(rgb_tensor(&image, size))
}

/// Reads a mask PNG as a `size·size` tensor of 0.0/1.0: the first channel scaled to [0, 1],
/// resized like [`load_rgb`], then 1 where the resized value is above 0.5.
///
/// Thresholding after the resize keeps the label binary, as the pixel classifier's targets
/// must be; note that a downscale without antialiasing can drop mask lines thinner than the
/// scale factor, as the same resize does to the image.
pub fn load_mask(path: &Path, size: usize) -> Result<Vec<f32>, MvtecError> {
    check_size(size)?;
    let mask = read_png(path)?;
    Ok(mask_tensor(&mask, size))
}

/// Reads a test image and its mask, checking that the mask has the image's size:
/// `(3·size·size` image in [-1, 1], `size·size` mask in {0, 1}).
///
/// An image without a mask gets all zeros: right for a good image, but for a defect image of an
/// image-level category ([`MvtecCategory::pixel_labels`] false) the zeros are no label at all,
/// and pixel metrics must not be computed from them.
pub fn load_test_image(test: &TestImage, size: usize) -> Result<(Vec<f32>, Vec<f32>), MvtecError> {
    check_size(size)?;
    let image = read_png(&test.image)?;
    let mask = match &test.mask {
        None => vec![0.0; size * size],
        Some(path) => {
            let mask = read_png(path)?;
            if (mask.width, mask.height) != (image.width, image.height) {
                return Err(MvtecError::MaskSize {
                    mask: path.clone(),
                    mask_width: mask.width,
                    mask_height: mask.height,
                    image_width: image.width,
                    image_height: image.height,
                });
            }
            mask_tensor(&mask, size)
        }
    };
    Ok((rgb_tensor(&image, size), mask))
}

fn check_size(size: usize) -> Result<(), MvtecError> {
    if size == 0 {
        return Err(MvtecError::BadArgument {
            what: "the image side",
            expected: "positive",
            got: size,
        });
    }
    Ok(())
}

fn rgb_tensor(image: &Rgb8, size: usize) -> Vec<f32> {
    normalised_chw(image, Crop::whole(image.width, image.height), size, false)
}

/// The mask's first channel, resized like the image, then 1 above one half.
fn mask_tensor(mask: &Rgb8, size: usize) -> Vec<f32> {
    let plane: Vec<f32> = mask
        .pixels
        .chunks_exact(3)
        .map(|rgb| f32::from(rgb[0]) / 255.0)
        .collect();
    let mut out = vec![0.0f32; size * size];
    let whole = Crop::whole(mask.width, mask.height);
    resample_plane(&plane, mask.width, whole, size, false, &mut out);
    for value in &mut out {
        *value = if *value > 0.5 { 1.0 } else { 0.0 };
    }
    out
}

/// `ground_truth/<defect>/<stem>_mask.png` for `test/<defect>/<stem>.png`.
fn mask_path(ground_truth: &Path, defect: &str, image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    ground_truth.join(defect).join(format!("{stem}_mask.png"))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, MvtecError> {
    let list = |e: std::io::Error| MvtecError::List {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list)? {
        let path = entry.map_err(list)?.path();
        if !file_name(&path).starts_with('.') {
            paths.push(path);
        }
    }
    // Name order, never walk order: read_dir's order is whatever the file system keeps.
    paths.sort();
    Ok(paths)
}

fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>, MvtecError> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

fn list_pngs(dir: &Path) -> Result<Vec<PathBuf>, MvtecError> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::png::{write_grey, write_rgb};

    fn rgb(path: &Path, width: usize, height: usize, value: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_rgb(path, width, height, &vec![value; width * height * 3]).unwrap();
    }

    fn grey(path: &Path, width: usize, height: usize, value: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_grey(path, width, height, &vec![value; width * height]).unwrap();
    }

    /// A category whose files are created in reverse name order, so walk order (creation
    /// order on many file systems) disagrees with name order.
    fn category(root: &Path) {
        for i in (0..5).rev() {
            rgb(&root.join(format!("train/good/{i:03}.png")), 8, 8, i as u8);
        }
        for i in (0..2).rev() {
            rgb(&root.join(format!("test/good/{i:03}.png")), 8, 8, 0);
        }
        for defect in ["scratch", "crack"] {
            for i in (0..3).rev() {
                // Each image's value is its index so pairing can be checked from pixels.
                let value = 10 * (i as u8 + 1);
                rgb(&root.join(format!("test/{defect}/{i:03}.png")), 8, 8, value);
                grey(
                    &root.join(format!("ground_truth/{defect}/{i:03}_mask.png")),
                    8,
                    8,
                    value,
                );
            }
        }
    }

    #[test]
    fn lists_sorted_and_pairs_masks_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        category(root);
        std::fs::write(root.join("train/good/notes.txt"), "not an image").unwrap();
        let found = read_category(root).unwrap();
        let names: Vec<String> = found.train.iter().map(|p| file_name(p)).collect();
        assert_eq!(
            names,
            ["000.png", "001.png", "002.png", "003.png", "004.png"]
        );
        let classes: Vec<&str> = found.test.iter().map(|t| t.defect.as_str()).collect();
        assert_eq!(
            classes,
            [
                "crack", "crack", "crack", "good", "good", "scratch", "scratch", "scratch"
            ]
        );
        for test in &found.test {
            match &test.mask {
                None => assert!(test.is_good()),
                Some(mask) => {
                    let image = read_png(&test.image).unwrap();
                    let mask_pixels = read_png(mask).unwrap();
                    assert_eq!(image.pixels[0], mask_pixels.pixels[0], "{test:?}");
                    assert_eq!(
                        mask.parent().unwrap(),
                        root.join("ground_truth").join(&test.defect)
                    );
                }
            }
        }
    }

    #[test]
    fn missing_mask_names_the_expected_path() {
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        let gone = dir.path().join("ground_truth/crack/001_mask.png");
        std::fs::remove_file(&gone).unwrap();
        let error = read_category(dir.path()).unwrap_err();
        assert!(
            matches!(&error, MvtecError::MissingMask { expected, .. } if *expected == gone),
            "{error}"
        );
        assert!(error.to_string().contains("001_mask.png"), "{error}");
        assert!(error.to_string().contains("test/crack/001.png"), "{error}");
    }

    #[test]
    fn category_without_ground_truth_is_image_level_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        category(root);
        let labelled = read_category(root).unwrap();
        assert!(labelled.pixel_labels);
        std::fs::remove_dir_all(root.join("ground_truth")).unwrap();
        let found = read_category(root).unwrap();
        assert!(!found.pixel_labels);
        // The same images and classes, none with a mask.
        let pairs = |c: &MvtecCategory| {
            c.test
                .iter()
                .map(|t| (t.image.clone(), t.defect.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&found), pairs(&labelled));
        assert_eq!(found.test.iter().filter(|t| !t.is_good()).count(), 6);
        assert!(found.test.iter().all(|t| t.mask.is_none()));
        // Defect images still load; their zero masks are no label, which pixel_labels says.
        let defect = found.test.iter().find(|t| !t.is_good()).unwrap();
        let (tensor, mask) = load_test_image(defect, 4).unwrap();
        assert_eq!((tensor.len(), mask.len()), (48, 16));
    }

    #[test]
    fn half_labelled_category_is_refused() {
        // ground_truth present but one defect type without any mask folder.
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        std::fs::remove_dir_all(dir.path().join("ground_truth/scratch")).unwrap();
        let error = read_category(dir.path()).unwrap_err();
        assert!(matches!(error, MvtecError::MissingMask { .. }), "{error}");
        assert!(
            error.to_string().contains("test/scratch/000.png"),
            "{error}"
        );
        // An empty ground_truth folder is a labelled set with every mask missing.
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        std::fs::remove_dir_all(dir.path().join("ground_truth")).unwrap();
        std::fs::create_dir_all(dir.path().join("ground_truth")).unwrap();
        let error = read_category(dir.path()).unwrap_err();
        assert!(matches!(error, MvtecError::MissingMask { .. }), "{error}");
    }

    #[test]
    fn good_folder_is_sorted_and_needs_two_images() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("passed");
        for name in ["b.png", "a.PNG", "c.png"] {
            rgb(&good.join(name), 4, 4, 9);
        }
        std::fs::write(good.join("notes.txt"), "x").unwrap();
        std::fs::write(good.join(".hidden.png"), "x").unwrap();
        std::fs::create_dir_all(good.join("sub.png")).unwrap();
        let names: Vec<String> = read_good_folder(&good)
            .unwrap()
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(names, ["a.PNG", "b.png", "c.png"]);

        for keep in [0, 1] {
            let folder = dir.path().join(format!("only{keep}"));
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..keep {
                rgb(&folder.join(format!("{i}.png")), 4, 4, 0);
            }
            let error = read_good_folder(&folder).unwrap_err();
            assert!(
                matches!(&error, MvtecError::TooFewImages { found, .. } if *found == keep),
                "{error}"
            );
            assert!(
                error.to_string().contains(&format!("only{keep}")),
                "{error}"
            );
        }
        let error = read_good_folder(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(error, MvtecError::MissingFolder { .. }), "{error}");
        assert!(error.to_string().contains("absent"), "{error}");
    }

    #[test]
    fn mask_without_image_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        std::fs::remove_file(dir.path().join("test/scratch/002.png")).unwrap();
        let error = read_category(dir.path()).unwrap_err();
        assert!(matches!(error, MvtecError::OrphanMask { .. }), "{error}");
        assert!(
            error.to_string().contains("scratch/002_mask.png"),
            "{error}"
        );
        // A mask folder for a defect with no test folder at all.
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        grey(
            &dir.path().join("ground_truth/hole/000_mask.png"),
            8,
            8,
            255,
        );
        let error = read_category(dir.path()).unwrap_err();
        assert!(error.to_string().contains("test/hole/000.png"), "{error}");
    }

    #[test]
    fn empty_and_missing_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        for i in 0..5 {
            std::fs::remove_file(dir.path().join(format!("train/good/{i:03}.png"))).unwrap();
        }
        let error = read_category(dir.path()).unwrap_err();
        assert!(
            matches!(&error, MvtecError::EmptyClass { path } if path.ends_with("train/good")),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        std::fs::create_dir_all(dir.path().join("test/hole")).unwrap();
        let error = read_category(dir.path()).unwrap_err();
        assert!(error.to_string().contains("test/hole"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        rgb(&dir.path().join("test/good/000.png"), 8, 8, 0);
        let error = read_category(dir.path()).unwrap_err();
        assert!(
            matches!(
                error,
                MvtecError::MissingFolder {
                    what: "train/good",
                    ..
                }
            ),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        rgb(&dir.path().join("train/good/000.png"), 8, 8, 0);
        let error = read_category(dir.path()).unwrap_err();
        assert!(
            matches!(error, MvtecError::MissingFolder { what: "test", .. }),
            "{error}"
        );
    }

    #[test]
    fn validation_split_is_interleaved_and_disjoint() {
        let dir = tempfile::tempdir().unwrap();
        category(dir.path());
        let found = read_category(dir.path()).unwrap();
        let (train, validation) = found.split_validation(2).unwrap();
        let names = |paths: &[PathBuf]| paths.iter().map(|p| file_name(p)).collect::<Vec<_>>();
        assert_eq!(names(&train), ["000.png", "002.png", "004.png"]);
        assert_eq!(names(&validation), ["001.png", "003.png"]);
        assert!(found.split_validation(1).is_err());
        assert!(matches!(
            found.split_validation(6),
            Err(MvtecError::TooFewForValidation { .. })
        ));
    }

    #[test]
    fn loads_normalised_chw_and_binary_masks() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image.png");
        // Red channel 255, green 0, blue 51 (0.2): CHW planes of 1, −1 and −0.6.
        let pixels: Vec<u8> = (0..6 * 4).flat_map(|_| [255u8, 0, 51]).collect();
        write_rgb(&image, 6, 4, &pixels).unwrap();
        let tensor = load_rgb(&image, 3).unwrap();
        assert_eq!(tensor.len(), 27);
        assert!(tensor[..9].iter().all(|&v| v == 1.0));
        assert!(tensor[9..18].iter().all(|&v| v == -1.0));
        assert!(tensor[18..].iter().all(|&v| (v + 0.6).abs() < 1e-6));

        // Left half on: after 6 → 3 the middle column reads 0.5·255 (not above 0.5) → 0.
        let mask = dir.path().join("mask.png");
        let grey_pixels: Vec<u8> = (0..4).flat_map(|_| [255u8, 255, 255, 0, 0, 0]).collect();
        write_grey(&mask, 6, 4, &grey_pixels).unwrap();
        let loaded = load_mask(&mask, 3).unwrap();
        assert_eq!(loaded, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(load_rgb(&image, 0).is_err());
    }

    #[test]
    fn bad_images_and_masks_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        category(root);
        let image = root.join("test/crack/000.png");
        let bytes = std::fs::read(&image).unwrap();
        std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
        let error = load_rgb(&image, 4).unwrap_err();
        assert!(error.to_string().contains("test/crack/000.png"), "{error}");

        // A mask of another size than its image.
        grey(&root.join("ground_truth/scratch/001_mask.png"), 4, 8, 255);
        let found = read_category(root).unwrap();
        let test = found
            .test
            .iter()
            .find(|t| t.image.ends_with("scratch/001.png"))
            .unwrap();
        let error = load_test_image(test, 4).unwrap_err();
        assert!(matches!(error, MvtecError::MaskSize { .. }), "{error}");
        assert!(error.to_string().contains("001_mask.png"), "{error}");

        // Good images load with an all-zero mask.
        let good = found.test.iter().find(|t| t.is_good()).unwrap();
        let (tensor, mask) = load_test_image(good, 4).unwrap();
        assert_eq!((tensor.len(), mask.len()), (48, 16));
        assert!(mask.iter().all(|&v| v == 0.0));
    }
}
