//! Spectral libraries: measured reflectance spectra of named materials, the building blocks of
//! synthetic training scenes (FERS is trained on background only; scenes mixed from real
//! spectra add backgrounds the few real scenes lack without touching any test scene).
//!
//! Read from ENVI spectral libraries (`file type = ENVI Spectral Library`: one spectrum per
//! line, wavelengths along samples), such as earthlib's `spectra.sli`, with the material classes
//! from its `spectra.csv` when present.

use std::path::Path;

use super::HsiError;

/// A library resampled or as read: `spectra[i]` has one reflectance per wavelength.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralLibrary {
    /// Band centres in nm.
    pub wavelengths: Vec<f64>,
    pub materials: Vec<Material>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    pub name: String,
    /// Classes from coarse to fine (earthlib: `pervious`, `vegetation`, `tree`, …); empty when
    /// the library has no class table.
    pub classes: Vec<String>,
    pub reflectance: Vec<f32>,
}

impl Material {
    /// Whether any of the material's classes is `class` (case-insensitive).
    pub fn is(&self, class: &str) -> bool {
        self.classes.iter().any(|c| c.eq_ignore_ascii_case(class))
    }
}

fn format_error(path: &Path, detail: impl Into<String>) -> HsiError {
    HsiError::Format {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

impl SpectralLibrary {
    /// Reads an ENVI spectral library (`.sli` + `.sli.hdr` or `.hdr`), and a class table
    /// `<stem>.csv` beside it when there is one (columns `NAME`, then `LEVEL_1`, `LEVEL_2`, …).
    /// Spectra that are not finite or not in [0, 2] (instrument glitches) are left out, and
    /// their count is logged.
    pub fn read_envi(path: &Path) -> Result<SpectralLibrary, HsiError> {
        let header = super::envi::read_header(path)?;
        if !header.is_spectral_library() {
            return Err(format_error(
                path,
                "is not an ENVI Spectral Library (file type)",
            ));
        }
        let wavelengths = header
            .wavelength
            .clone()
            .ok_or_else(|| format_error(path, "a spectral library needs its wavelengths"))?;
        let to_nm = match header
            .wavelength_units
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("micrometers" | "microns" | "um" | "µm") => 1000.0,
            Some("nanometers" | "nm") => 1.0,
            // earthlib leaves the unit in the header blank; values below 30 can only be µm.
            _ if wavelengths.iter().all(|&w| w < 30.0) => 1000.0,
            _ => 1.0,
        };
        let wavelengths: Vec<f64> = wavelengths.iter().map(|w| w * to_nm).collect();
        let names: Vec<String> = header
            .field("spectra names")
            .map(|v| super::envi::split_list(v).map(str::to_string).collect())
            .unwrap_or_default();
        let cube = super::envi::read(path)?;
        // A library reads as `lines` rows of `samples` one-band pixels.
        if cube.bands() != 1 {
            return Err(format_error(
                path,
                format!(
                    "a spectral library has 1 band, this file has {}",
                    cube.bands()
                ),
            ));
        }
        if !names.is_empty() && names.len() != cube.rows() {
            return Err(format_error(
                path,
                format!("{} spectra names for {} spectra", names.len(), cube.rows()),
            ));
        }
        let classes = read_class_table(path)?;
        let mut materials = Vec::with_capacity(cube.rows());
        let mut rejected = 0;
        for row in 0..cube.rows() {
            let reflectance = cube.line(row).to_vec();
            if reflectance
                .iter()
                .any(|r| !r.is_finite() || !(0.0..=2.0).contains(r))
            {
                rejected += 1;
                continue;
            }
            let name = names
                .get(row)
                .cloned()
                .unwrap_or_else(|| format!("spectrum {row}"));
            let classes = classes.get(&name).cloned().unwrap_or_default();
            materials.push(Material {
                name,
                classes,
                reflectance,
            });
        }
        if rejected > 0 {
            log::info!(
                "{}: left out {rejected} spectra outside [0, 2] or not finite",
                path.display()
            );
        }
        Ok(SpectralLibrary {
            wavelengths,
            materials,
        })
    }

    /// The materials having class `class`.
    pub fn of_class(&self, class: &str) -> Vec<&Material> {
        self.materials.iter().filter(|m| m.is(class)).collect()
    }

    /// Every spectrum linearly interpolated to `wavelengths` (nm). Bands outside the library's
    /// range are refused rather than extrapolated.
    pub fn resample(&self, wavelengths: &[f64]) -> Result<SpectralLibrary, HsiError> {
        let (first, last) = match (self.wavelengths.first(), self.wavelengths.last()) {
            (Some(&f), Some(&l)) if self.wavelengths.windows(2).all(|w| w[0] < w[1]) => (f, l),
            _ => {
                return Err(HsiError::Detector(
                    "library wavelengths must increase".into(),
                ));
            }
        };
        if let Some(&w) = wavelengths.iter().find(|&&w| !(first..=last).contains(&w)) {
            return Err(HsiError::Detector(format!(
                "band at {w} nm lies outside the library's {first}–{last} nm"
            )));
        }
        // For each target band: the library interval it falls in and the weight of its end.
        let spans: Vec<(usize, f64)> = wavelengths
            .iter()
            .map(|&w| {
                let upper = self
                    .wavelengths
                    .partition_point(|&x| x < w)
                    .clamp(1, self.wavelengths.len() - 1);
                let (a, b) = (self.wavelengths[upper - 1], self.wavelengths[upper]);
                (upper, (w - a) / (b - a))
            })
            .collect();
        let materials = self
            .materials
            .iter()
            .map(|m| Material {
                name: m.name.clone(),
                classes: m.classes.clone(),
                reflectance: spans
                    .iter()
                    .map(|&(upper, t)| {
                        let (a, b) = (
                            f64::from(m.reflectance[upper - 1]),
                            f64::from(m.reflectance[upper]),
                        );
                        (a + t * (b - a)) as f32
                    })
                    .collect(),
            })
            .collect();
        Ok(SpectralLibrary {
            wavelengths: wavelengths.to_vec(),
            materials,
        })
    }
}

/// `NAME,LEVEL_1,…` rows of `<stem>.csv` beside the library, by name; empty without the file.
fn read_class_table(
    path: &Path,
) -> Result<std::collections::HashMap<String, Vec<String>>, HsiError> {
    let mut stem = path.to_path_buf();
    // spectra.sli.hdr → spectra.csv, spectra.sli → spectra.csv
    while stem.extension().is_some() {
        stem.set_extension("");
    }
    let csv = stem.with_extension("csv");
    let Ok(text) = std::fs::read_to_string(&csv) else {
        return Ok(Default::default());
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    if header.first().map(|h| h.trim()) != Some("NAME") {
        return Err(format_error(
            &csv,
            "a class table starts with a NAME column",
        ));
    }
    let levels: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.trim().starts_with("LEVEL_"))
        .map(|(i, _)| i)
        .collect();
    Ok(lines
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let name = cells.first()?.trim().to_string();
            let classes = levels
                .iter()
                .filter_map(|&i| cells.get(i))
                .map(|c| c.trim().to_string())
                .collect();
            Some((name, classes))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_library(dir: &Path) -> std::path::PathBuf {
        // Three spectra over 4 wavelengths in µm, one with a glitch.
        let values: [f32; 12] = [
            0.1,
            0.2,
            0.3,
            0.4,
            0.5,
            0.5,
            0.5,
            0.5,
            0.2,
            f32::NAN,
            0.2,
            0.2,
        ];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("lib.sli"), bytes).unwrap();
        std::fs::write(
            dir.join("lib.sli.hdr"),
            "ENVI\nsamples = 4\nlines = 3\nbands = 1\nfile type = ENVI Spectral Library\ndata type = 4\n\
             interleave = bsq\nbyte order = 0\nspectra names = { grass , roof , broken }\n\
             wavelength = { 0.4, 0.5, 0.6, 0.7 }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("lib.csv"),
            "NAME,LEVEL_1,LEVEL_2\ngrass,pervious,vegetation\nroof,impervious,roof\n",
        )
        .unwrap();
        dir.join("lib.sli.hdr")
    }

    #[test]
    fn reads_names_classes_and_micrometres_and_leaves_glitches_out() {
        let dir = tempfile::tempdir().unwrap();
        let library = SpectralLibrary::read_envi(&write_library(dir.path())).unwrap();
        assert_eq!(library.wavelengths, [400.0, 500.0, 600.0, 700.0]);
        assert_eq!(library.materials.len(), 2);
        assert_eq!(library.of_class("impervious")[0].name, "roof");
        assert_eq!(
            library.of_class("vegetation")[0].reflectance,
            [0.1, 0.2, 0.3, 0.4]
        );
    }

    #[test]
    fn resampling_interpolates_and_refuses_extrapolation() {
        let dir = tempfile::tempdir().unwrap();
        let library = SpectralLibrary::read_envi(&write_library(dir.path())).unwrap();
        let resampled = library.resample(&[400.0, 450.0, 675.0]).unwrap();
        let grass = &resampled.materials[0].reflectance;
        assert!(
            (grass[1] - 0.15).abs() < 1e-6 && (grass[2] - 0.375).abs() < 1e-6,
            "{grass:?}"
        );
        let message = library.resample(&[380.0]).unwrap_err().to_string();
        assert!(message.contains("380"), "{message}");
    }

    #[test]
    fn a_plain_cube_is_not_a_library() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.img"), [0u8; 8]).unwrap();
        std::fs::write(
            dir.path().join("c.hdr"),
            "ENVI\nsamples = 2\nlines = 2\nbands = 2\ndata type = 1\n",
        )
        .unwrap();
        let message = SpectralLibrary::read_envi(&dir.path().join("c.hdr"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("Spectral Library"), "{message}");
    }
}
