//! Checks `models/manifest.toml` against the model files and records build facts.
//!
//! A model file that is present but does not match its sha256 fails the build, naming the
//! file: shipping a binary next to the wrong model is worse than not building. A file that is
//! absent (a third-party model fetched by `scripts/fetch-models.sh`) only warns; the runtime
//! refuses to load it until it is fetched.

use std::path::Path;

#[path = "src/detector/digest.rs"]
mod digest;

use digest::sha256_file;

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn main() {
    let models = Path::new("models");
    let manifest_path = models.join("manifest.toml");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap_or_else(|err| fail(format!("cannot read {}: {err}", manifest_path.display())));
    let manifest: toml::Table = toml::from_str(&text)
        .unwrap_or_else(|err| fail(format!("{}: {err}", manifest_path.display())));
    let entries = manifest
        .get("model")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut verified = Vec::new();
    for entry in &entries {
        let name = entry
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("<unnamed>");
        let files = entry
            .get("files")
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut complete = !files.is_empty();
        for file in &files {
            let (Some(rel), Some(expected)) = (
                file.get("path").and_then(toml::Value::as_str),
                file.get("sha256").and_then(toml::Value::as_str),
            ) else {
                fail(format!(
                    "model {name}: a file entry lacks path or sha256 in {}",
                    manifest_path.display()
                ));
            };
            let path = models.join(rel);
            println!("cargo:rerun-if-changed={}", path.display());
            if !path.exists() {
                complete = false;
                println!(
                    "cargo:warning=model {name} not fetched yet (run scripts/fetch-models.sh): {}",
                    path.display()
                );
                continue;
            }
            let got = sha256_file(&path).unwrap_or_else(|err| {
                fail(format!(
                    "model {name}: cannot read {}: {err}",
                    path.display()
                ))
            });
            if !got.eq_ignore_ascii_case(expected) {
                fail(format!(
                    "model {name}: sha256 mismatch, manifest says {expected}, file has {got}: {}",
                    path.display()
                ));
            }
        }
        if complete {
            verified.push(name.to_string());
        }
    }
    println!(
        "cargo:rustc-env=VIGIL_MODELS_VERIFIED_AT_BUILD={}",
        verified.join(",")
    );
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=VIGIL_BUILD_TARGET={target}");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=VIGIL_BUILD_PROFILE={profile}");
}
