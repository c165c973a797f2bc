//! `vigil info` tells int8 kernels from float ones after tract's optimization.

use vigil::detector::inspect::{Arithmetic, inspect};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/onnx/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn count(report: &vigil::detector::inspect::ModelReport, kind: Arithmetic) -> usize {
    report.ops.iter().filter(|o| o.arithmetic == kind).count()
}

#[test]
fn the_recommended_int8_linear_form_runs_an_int8_kernel() {
    let report = inspect(&fixture("linear_int8.onnx"), None).unwrap();
    assert!(
        count(&report, Arithmetic::Int8Kernel) >= 1,
        "{}",
        report.render(None)
    );
    assert_eq!(
        count(&report, Arithmetic::FloatKernel),
        0,
        "{}",
        report.render(None)
    );
}

#[test]
fn an_fp32_linear_layer_runs_a_float_kernel() {
    let report = inspect(&fixture("linear_fp32.onnx"), None).unwrap();
    assert_eq!(
        count(&report, Arithmetic::Int8Kernel),
        0,
        "{}",
        report.render(None)
    );
    assert!(
        count(&report, Arithmetic::FloatKernel) >= 1,
        "{}",
        report.render(None)
    );
}

#[test]
fn yamnet_qdq_runs_in_float() {
    let manifest = vigil::detector::Manifest::shipped().unwrap();
    let report = inspect("yamnet", Some(&manifest)).unwrap();
    assert_eq!(count(&report, Arithmetic::Int8Kernel), 0);
    assert!(
        count(&report, Arithmetic::FloatKernel) >= 27,
        "one per conv: {}",
        report.render(None)
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let err = inspect("/nonexistent/model.onnx", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/model.onnx"), "{err}");
}
