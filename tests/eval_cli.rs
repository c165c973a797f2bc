//! `vigil eval --scores FILE.csv` prints the metrics of any score file, and names what is wrong
//! with a bad one.

use std::process::Command;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

#[test]
fn a_score_file_is_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.csv");
    // Positives 0.9, 0.8, 0.3; negatives 0.7, 0.2: 5 of the 6 pairs are ordered right.
    std::fs::write(&path, "label,score\n1,0.9\n1,0.8\n0,0.7\n1,0.3\n0,0.2\n").unwrap();
    let out = vigil()
        .args(["eval", "--scores"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0.8333"), "ROC AUC 5/6 expected in: {text}");
}

#[test]
fn a_bad_score_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.csv");
    std::fs::write(&path, "score,label\n0.9,1\nhigh,0\n").unwrap();
    let out = vigil()
        .args(["eval", "--scores"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("scores.csv"),
        "{err}"
    );
}
