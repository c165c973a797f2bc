//! Checks `vigil::hsi::envi` and `vigil::hsi::mat` against `tests/fixtures/hsi`, written by
//! `scripts/reference/hsi_fixtures.py` (numpy + scipy; every .mat there is checked against
//! `scipy.io.loadmat`), reads the eight ABU benchmark scenes in `shared/data/hsi` when that
//! folder is present, and checks that malformed files give errors that name the problem.
//!
//! Comparisons are exact: the fixtures' expected values are what an exact conversion to `f32`
//! (ENVI) or `f64` (MAT) gives, so any difference is a decoding or ordering mistake.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use vigil::hsi::{self, HsiError, envi, mat};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hsi")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn pair(v: &Value) -> (f64, f64) {
    let f = floats(v);
    (f[0], f[1])
}

/// The error's message, asserting it contains every one of `needles`.
fn assert_error<T: std::fmt::Debug>(result: Result<T, HsiError>, needles: &[&str]) -> String {
    let message = result.expect_err("an error was expected").to_string();
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    message
}

#[test]
fn envi_fixtures_read_exactly() {
    let expected = expected();
    let envi = &expected["envi"];
    let shape = (
        envi["lines"].as_u64().unwrap() as usize,
        envi["samples"].as_u64().unwrap() as usize,
        envi["bands"].as_u64().unwrap() as usize,
    );
    let files = envi["files"].as_array().unwrap();
    assert_eq!(files.len(), 9 * 3 * 2 + 2);
    for file in files {
        let path = fixtures().join(file["open"].as_str().unwrap());
        let cube = envi::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            (cube.rows(), cube.cols(), cube.bands()),
            shape,
            "{}",
            path.display()
        );
        let want: Vec<f32> = floats(&envi["cubes"][file["cube"].as_str().unwrap()])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(cube.data(), want.as_slice(), "{}", path.display());

        let header = envi::read_header(&path).unwrap();
        assert_eq!(
            u64::from(header.data_type.code()),
            file["data_type"].as_u64().unwrap()
        );
        let interleave = match header.interleave {
            envi::Interleave::Bsq => "bsq",
            envi::Interleave::Bil => "bil",
            envi::Interleave::Bip => "bip",
        };
        assert_eq!(interleave, file["interleave"].as_str().unwrap());
        let order = match header.byte_order {
            envi::ByteOrder::Little => 0,
            envi::ByteOrder::Big => 1,
        };
        assert_eq!(order, file["byte_order"].as_u64().unwrap());
        assert_eq!(
            header.header_offset as u64,
            file["header_offset"].as_u64().unwrap_or(0)
        );

        if let Some(meta) = file.get("meta") {
            let wavelengths = floats(&meta["wavelength"]);
            assert_eq!(header.wavelength.as_ref(), Some(&wavelengths));
            assert_eq!(cube.wavelengths.as_ref(), Some(&wavelengths));
            assert_eq!(
                header.wavelength_units.as_deref(),
                meta["wavelength_units"].as_str()
            );
            let names: Vec<String> = meta["band_names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            assert_eq!(header.band_names, Some(names));
            assert_eq!(header.data_ignore_value, meta["data_ignore_value"].as_f64());
            let map = cube.map_info.as_ref().unwrap();
            let want = &meta["map_info"];
            assert_eq!(map.projection, want["projection"].as_str().unwrap());
            assert_eq!(map.reference_pixel, pair(&want["reference_pixel"]));
            assert_eq!(
                map.reference_easting_northing,
                pair(&want["reference_easting_northing"])
            );
            assert_eq!(map.pixel_size, pair(&want["pixel_size"]));
            let rest: Vec<&str> = want["rest"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(map.rest, rest);
            assert_eq!(header.map_info.as_ref(), Some(map));
            // CRLF line ends are not part of a multi-line value.
            assert_eq!(
                header.description.as_deref(),
                Some("A fixture with metadata,\n  written by hsi_fixtures.py")
            );
        } else {
            assert_eq!(cube.wavelengths, None);
            assert_eq!(cube.map_info, None);
        }
    }
    // The extension dispatch in `hsi::read_scene` sends headers and data files to ENVI.
    let scene = hsi::read_scene(&fixtures().join("u16_bsq_le.hdr")).unwrap();
    assert_eq!(scene.cube.rows(), shape.0);
    assert!(scene.labels.is_none());
}

#[test]
fn mat_fixtures_read_exactly() {
    let expected = expected();
    for file in expected["mat"].as_array().unwrap() {
        let path = fixtures().join(file["file"].as_str().unwrap());
        let arrays = mat::read_arrays(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want = file["arrays"].as_array().unwrap();
        let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
        let want_names: Vec<&str> = want.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, want_names, "{}", path.display());
        for (array, want) in arrays.iter().zip(want) {
            assert_eq!(
                array.dims,
                usizes(&want["dims"]),
                "{} {}",
                path.display(),
                array.name
            );
            assert_eq!(
                array.data,
                floats(&want["data"]),
                "{} {}",
                path.display(),
                array.name
            );
        }

        let scene = mat::read_scene(&path).unwrap();
        let data = &arrays[0];
        assert_eq!(data.name, "data");
        assert_eq!(
            [scene.cube.rows(), scene.cube.cols(), scene.cube.bands()],
            data.dims[..]
        );
        let as_f32: Vec<f32> = data.data.iter().map(|&v| v as f32).collect();
        assert_eq!(scene.cube.data(), as_f32.as_slice());
        let map = arrays.iter().find(|a| a.name == "map").unwrap();
        let labels = scene.labels.unwrap();
        let want_labels: Vec<bool> = map.data.iter().map(|&v| v != 0.0).collect();
        assert_eq!(labels, want_labels);
        let count = labels.iter().filter(|&&l| l).count();
        assert_eq!(count as u64, file["labels"].as_u64().unwrap());
        // `hsi::read_scene` dispatches `.mat` here.
        assert_eq!(hsi::read_scene(&path).unwrap().cube, scene.cube);
    }
}

#[test]
fn mat_scene_layout_errors() {
    let f = fixtures();
    assert_error(
        mat::read_scene(&f.join("no_data.mat")),
        &["no_data.mat", "no variable `data`", "map, other"],
    );
    assert_error(
        mat::read_scene(&f.join("cube_2d.mat")),
        &["variable `data` has shape [3, 4]", "3-D"],
    );
    assert_error(
        mat::read_scene(&f.join("map_shape.mat")),
        &["variable `map` has shape [4, 3]", "3×4×5", "must be 3×4"],
    );
    // read_arrays has nothing to object to in them.
    assert_eq!(mat::read_arrays(&f.join("no_data.mat")).unwrap().len(), 2);
}

/// Expected values for the ABU scenes, computed with scipy 1.17.1 / numpy 2.4.6:
/// `m = scipy.io.loadmat(f); d = m['data'].astype(np.int64).reshape(-1)` (C order, H×W×B),
/// `sum = d.sum()`, `weighted = (d * (np.arange(d.size) % 7919 + 1)).sum()` (catches a wrong
/// axis order, which the plain sum cannot), `lab = np.flatnonzero(m['map'].reshape(-1) != 0)`,
/// `anomalies = len(lab)`, `anomaly_index_sum = lab.sum()`.
struct Abu {
    name: &'static str,
    shape: [usize; 3],
    sum: i64,
    weighted: i64,
    anomalies: usize,
    anomaly_index_sum: usize,
}

#[rustfmt::skip]
const ABU: [Abu; 8] = [
    Abu { name: "abu-beach-1", shape: [150, 150, 188], sum: 925647079, weighted: 3674433943164, anomalies: 19, anomaly_index_sum: 114088 },
    Abu { name: "abu-beach-2", shape: [100, 100, 193], sum: 336784784, weighted: 1325431779704, anomalies: 202, anomaly_index_sum: 728125 },
    Abu { name: "abu-beach-3", shape: [100, 100, 188], sum: 1287759224, weighted: 5096999559038, anomalies: 11, anomaly_index_sum: 20484 },
    Abu { name: "abu-urban-1", shape: [100, 100, 204], sum: 1536695052, weighted: 6081832194344, anomalies: 67, anomaly_index_sum: 196502 },
    Abu { name: "abu-urban-2", shape: [100, 100, 207], sum: 1490482715, weighted: 5884788588728, anomalies: 155, anomaly_index_sum: 769932 },
    Abu { name: "abu-urban-3", shape: [100, 100, 191], sum: 1404869422, weighted: 5563416752640, anomalies: 52, anomaly_index_sum: 123322 },
    Abu { name: "abu-urban-4", shape: [100, 100, 205], sum: 1196001604, weighted: 4723931548185, anomalies: 272, anomaly_index_sum: 1415581 },
    Abu { name: "abu-urban-5", shape: [100, 100, 205], sum: 1262968001, weighted: 4998074895702, anomalies: 232, anomaly_index_sum: 1691544 },
];

#[test]
fn abu_scenes_match_scipy() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/hsi"));
    if !dir.is_dir() {
        eprintln!(
            "note: {} is absent; the ABU scene checks are skipped",
            dir.display()
        );
        return;
    }
    for abu in &ABU {
        let path = dir.join(format!("{}.mat", abu.name));
        let start = Instant::now();
        let scene = mat::read_scene(&path).unwrap_or_else(|e| panic!("{e}"));
        let elapsed = start.elapsed();
        let cube = &scene.cube;
        assert_eq!(
            [cube.rows(), cube.cols(), cube.bands()],
            abu.shape,
            "{}",
            abu.name
        );
        // int16/uint16 values are exact in f32, so the integer sums are exact.
        let (mut sum, mut weighted) = (0i64, 0i64);
        for (i, &v) in cube.data().iter().enumerate() {
            let v = v as i64;
            sum += v;
            weighted += v * (i as i64 % 7919 + 1);
        }
        assert_eq!((sum, weighted), (abu.sum, abu.weighted), "{}", abu.name);
        let labels = scene.labels.as_ref().unwrap();
        let anomalous: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
        assert_eq!(anomalous.len(), abu.anomalies, "{}", abu.name);
        assert_eq!(
            anomalous.iter().sum::<usize>(),
            abu.anomaly_index_sum,
            "{}",
            abu.name
        );
        eprintln!(
            "{}: {:?}, {} anomalous pixels, read in {:.1} ms",
            abu.name,
            abu.shape,
            anomalous.len(),
            elapsed.as_secs_f64() * 1e3
        );
    }

    // The same cube through ENVI, big-endian BSQ (the layout furthest from BIP).
    let scene = mat::read_scene(&dir.join("abu-beach-1.mat")).unwrap();
    let cube = &scene.cube;
    let (rows, cols, bands) = (cube.rows(), cube.cols(), cube.bands());
    let mut raw = Vec::with_capacity(rows * cols * bands * 2);
    for b in 0..bands {
        for p in 0..rows * cols {
            raw.extend((cube.data()[p * bands + b] as i16).to_be_bytes());
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("beach.bsq"), &raw).unwrap();
    std::fs::write(
        tmp.path().join("beach.hdr"),
        format!(
            "ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\ndata type = 2\n\
             interleave = bsq\nbyte order = 1\n"
        ),
    )
    .unwrap();
    let start = Instant::now();
    let envi_cube = envi::read(&tmp.path().join("beach.bsq")).unwrap();
    eprintln!(
        "abu-beach-1 as ENVI i16 BSQ big-endian: read in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(&envi_cube, cube);
}

/// A 3 lines × 4 samples × 5 bands i16 file and the header text describing it.
fn envi_case(dir: &Path, header: &str) -> PathBuf {
    std::fs::write(dir.join("case.img"), [0u8; 120]).unwrap();
    std::fs::write(dir.join("case.hdr"), header).unwrap();
    dir.join("case.hdr")
}

fn header(lines: usize, extra: &str) -> String {
    format!("ENVI\nsamples = 4\nlines = {lines}\nbands = 5\ndata type = 2\n{extra}")
}

#[test]
fn envi_bad_inputs_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_eq!(
        envi::read(&envi_case(dir, &header(3, "")))
            .unwrap()
            .data()
            .len(),
        60
    );

    // 120 bytes = 3×4×5 i16; a header saying 4 lines wants 160, one saying 2 wants 80.
    assert_error(
        envi::read(&envi_case(dir, &header(4, ""))),
        &[
            "case.img",
            "holds 120 bytes",
            "describes 160",
            "40 bytes short",
        ],
    );
    assert_error(
        envi::read(&envi_case(dir, &header(2, ""))),
        &["holds 120 bytes", "describes 80", "40 bytes too many"],
    );
    // A file longer by exactly the header offset is the one larger file that is accepted.
    let cube = envi::read(&envi_case(dir, &header(2, "header offset = 40\n"))).unwrap();
    assert_eq!(cube.rows(), 2);
    assert_error(
        envi::read(&envi_case(dir, &header(3, "header offset = 1\n"))),
        &["header offset 1", "describes 121", "1 bytes short"],
    );

    assert_error(
        envi::read(&envi_case(dir, &header(3, "interleave = bsl\n"))),
        &["case.hdr", "unknown interleave `bsl`", "bsq, bil and bip"],
    );
    assert_error(
        envi::read(&envi_case(dir, &header(3, "byte order = big\n"))),
        &["unknown byte order `big`"],
    );
    let unknown = "ENVI\nsamples = 4\nlines = 3\nbands = 5\ndata type = 10\n";
    assert_error(
        envi::read(&envi_case(dir, unknown)),
        &["unknown data type `10`", "1 (u8)", "12 (u16)", "15 (u64)"],
    );
    for (code, name) in [(6, "complex f32"), (9, "complex f64")] {
        let text = format!("ENVI\nsamples = 4\nlines = 3\nbands = 5\ndata type = {code}\n");
        let path = envi_case(dir, &text);
        assert_error(
            envi::read(&path),
            &[&format!("data type {code} ({name}) is complex")],
        );
        // The header alone is still readable.
        assert!(envi::read_header(&path).unwrap().data_type.is_complex());
    }
    assert_error(
        envi::read(&envi_case(dir, &header(3, "wavelength = {400, 500}\n"))),
        &["2 wavelengths for 5 bands"],
    );
    assert_error(
        envi::read(&envi_case(
            dir,
            &header(3, "description = {open\nsamples = 4\n"),
        )),
        &["unbalanced braces", "`description`"],
    );
    assert_error(
        envi::read(&envi_case(dir, &header(3, "bands = five\n"))),
        &["`bands = five` is not a whole number"],
    );
    assert_error(
        envi::read(&envi_case(
            dir,
            "ENVI\nsamples = 4\nbands = 5\ndata type = 2\n",
        )),
        &["no `lines`"],
    );
    assert_error(
        envi::read(&envi_case(
            dir,
            "samples = 4\nlines = 3\nbands = 5\ndata type = 2\n",
        )),
        &["not an ENVI header", "`ENVI`"],
    );

    // Missing files: the names tried are listed.
    std::fs::write(dir.join("alone.hdr"), header(3, "")).unwrap();
    assert_error(
        envi::read(&dir.join("alone.hdr")),
        &[
            "no ENVI data file",
            "alone, ",
            "alone.img",
            "alone.dat",
            "alone.bip",
        ],
    );
    std::fs::write(dir.join("orphan.dat"), [0u8; 120]).unwrap();
    assert_error(
        envi::read(&dir.join("orphan.dat")),
        &["no ENVI header", "orphan.dat.hdr", "orphan.hdr"],
    );
    assert_error(envi::read(&dir.join("nowhere.hdr")), &["does not exist"]);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn mat_bad_inputs_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let compressed = std::fs::read(fixtures().join("matlab_le_z.mat")).unwrap();
    let plain = std::fs::read(fixtures().join("scene_i16.mat")).unwrap();

    for (bytes, cut) in [
        (&compressed, 140),
        (&compressed, compressed.len() - 1),
        (&plain, 200),
    ] {
        let path = write(dir, "cut.mat", &bytes[..cut]);
        let message = assert_error(mat::read_arrays(&path), &["cut.mat", "truncated", "byte"]);
        assert!(message.contains("remain"), "{message}");
    }
    let path = write(dir, "short.mat", &plain[..100]);
    assert_error(mat::read_scene(&path), &["truncated: 100 bytes", "header"]);

    let mut flipped = compressed.clone();
    flipped[160] ^= 0x10;
    let path = write(dir, "flipped.mat", &flipped);
    assert_error(
        mat::read_scene(&path),
        &["compressed element at byte 128", "inflated"],
    );

    let mut v73 = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .".to_vec();
    v73.resize(116, b' ');
    v73.extend([0u8; 8]);
    v73.extend([0x00, 0x02, b'I', b'M']);
    v73.resize(512, 0);
    v73.extend(b"\x89HDF\r\n\x1a\n");
    let path = write(dir, "v73.mat", &v73);
    assert_error(
        mat::read_scene(&path),
        &["v7.3", "HDF5", "not supported", "-v7"],
    );

    let path = write(dir, "text.mat", &[b'x'; 300]);
    assert_error(
        mat::read_arrays(&path),
        &["not a MATLAB level 5 MAT-file", "endian indicator"],
    );

    let err = mat::read_arrays(&dir.join("missing.mat")).unwrap_err();
    assert!(matches!(err, HsiError::Io { .. }), "{err}");
}

#[test]
fn mat_fixture_truncations_and_flips_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["scene_i16.mat", "matlab_be_z.mat", "mixed_z.mat"] {
        let good = std::fs::read(fixtures().join(name)).unwrap();
        let path = tmp.path().join(name);
        for cut in (0..good.len()).step_by(7) {
            std::fs::write(&path, &good[..cut]).unwrap();
            let _ = mat::read_arrays(&path);
            let _ = mat::read_scene(&path);
        }
        let mut state = 0x853c_49e6_748f_ea9bu64;
        for _ in 0..400 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut mutated = good.clone();
            let at = (state >> 33) as usize % good.len();
            mutated[at] ^= 1 << ((state >> 20) % 8);
            std::fs::write(&path, &mutated).unwrap();
            let _ = mat::read_scene(&path);
        }
    }
}
