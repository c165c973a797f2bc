//! The whole fit: features of the three parts, the head, the settings, the test report, the
//! run folder and, on request, the model installed in a manifest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use serde::Serialize;

use super::EventHeadError;
use super::features::{RecordingPatches, extract};
use super::head::{EventHeadConfig, HeadTrainConfig, train};
use super::settings::{LabelSettings, ScoreSource, choose, label_scores, remeasure};
use crate::detector::Manifest;
use crate::eval::events::MatchRule;
use crate::models::audio_events::{AudioEventsSettings, ClassMap, HEAD_PREFIX};
use crate::train::TrainError;
use crate::train::backend::{BackendKind, training_device};
use crate::train::manifest::{ModelEntry, TensorEntry, upsert};
use crate::train::onnx::save;
use crate::train::parity::{plan, run_plan_outputs};
use crate::train::run::RunDir;

/// The model name the fitted head is installed under.
pub const MODEL_NAME: &str = "audio-events";
const EMBEDDING: usize = 1024;

#[derive(Debug, Clone)]
pub struct FitConfig {
    pub train: PathBuf,
    pub validation: PathBuf,
    pub test: Option<PathBuf>,
    pub out: PathBuf,
    /// The labels the box raises; each needs marked events in the training part to get a
    /// head output, and in the validation part to get settings.
    pub labels: Vec<String>,
    /// False alarms per hour of background the settings may raise, shared by the labels.
    pub budget_per_hour: f64,
    pub hidden: usize,
    pub head: HeadTrainConfig,
    pub backend: BackendKind,
    /// The YAMNet model of the manifest whose embedding the head reads.
    pub yamnet: String,
    /// 10 ms frames between patch starts (YAMNet's own: 48).
    pub patch_hop_frames: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FitSummary {
    pub run: PathBuf,
    pub head_labels: Vec<String>,
    pub validation: Vec<LabelSettings>,
    pub test: Vec<LabelSettings>,
    /// Labels left without settings, and why.
    pub unfitted: Vec<(String, String)>,
    pub budget_per_hour: f64,
    pub patch_hop_frames: usize,
    pub train_patches: usize,
    pub final_loss: f64,
    pub tract_max_difference: f32,
    /// Per label: ROC AUC of each score source over the validation patches (patches that hold
    /// the label against patches that hold no event), threshold-free.
    pub validation_patch_auroc: Vec<(String, String, f64)>,
    pub seconds: f64,
}

/// What the head's tract graph gives for each patch of each recording, sigmoid applied.
fn head_scores(
    graph: &crate::train::parity::TractPlan,
    recordings: &[RecordingPatches],
) -> Result<Vec<Vec<Vec<f32>>>, EventHeadError> {
    recordings
        .iter()
        .map(|rec| {
            rec.patches
                .iter()
                .map(|patch| {
                    let outputs = run_plan_outputs(graph, &[1, EMBEDDING], &patch.embedding)
                        .map_err(TrainError::from)?;
                    Ok(outputs
                        .into_iter()
                        .next()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|z| 1.0 / (1.0 + (-z).exp()))
                        .collect())
                })
                .collect()
        })
        .collect()
}

pub fn fit(manifest: &Manifest, config: &FitConfig) -> Result<FitSummary, EventHeadError> {
    let started = Instant::now();
    if !(config.budget_per_hour.is_finite() && config.budget_per_hour >= 0.0) {
        return Err(EventHeadError::Config(format!(
            "--false-alarms-per-hour {}: must be a number ≥ 0",
            config.budget_per_hour
        )));
    }
    let labels = &config.labels;
    let hop = AudioEventsSettings {
        events: None,
        patch_hop_frames: Some(config.patch_hop_frames),
    };
    let log_mel = hop.log_mel().map_err(EventHeadError::Config)?;
    let train_set = extract(manifest, &config.yamnet, &config.train, labels, &log_mel)?;
    let validation = extract(
        manifest,
        &config.yamnet,
        &config.validation,
        labels,
        &log_mel,
    )?;
    let test = match &config.test {
        Some(dir) => extract(manifest, &config.yamnet, dir, labels, &log_mel)?,
        None => Vec::new(),
    };
    let yamnet_spec = manifest.model(&config.yamnet)?;
    let class_file = yamnet_spec.setting_str("labels").ok_or_else(|| {
        EventHeadError::Config(format!("model {} names no labels file", config.yamnet))
    })?;
    let classes = ClassMap::load(&manifest.dir.join(class_file))
        .map_err(|err| EventHeadError::Config(err.to_string()))?;

    // The head learns the labels the training part marks.
    let mut unfitted = Vec::new();
    let trained: Vec<usize> = (0..labels.len())
        .filter(|&l| {
            let present = train_set
                .iter()
                .flat_map(|r| &r.patches)
                .any(|p| p.label == Some(l));
            if !present {
                unfitted.push((
                    labels[l].clone(),
                    "no training events: no head output".to_string(),
                ));
            }
            present
        })
        .collect();
    let head_labels: Vec<String> = trained.iter().map(|&l| labels[l].clone()).collect();
    if head_labels.is_empty() {
        return Err(EventHeadError::Data {
            path: config.train.clone(),
            problem: format!(
                "no marked event of {} in the training part",
                labels.join(", ")
            ),
        });
    }
    // Patches relabelled to head output indices.
    let train_patches: Vec<super::features::Patch> = train_set
        .iter()
        .flat_map(|r| &r.patches)
        .map(|p| {
            let mut p = p.clone();
            p.label = p.label.and_then(|l| trained.iter().position(|&t| t == l));
            p
        })
        .collect();
    let device = training_device(config.backend).map_err(TrainError::from)?;
    let model = EventHeadConfig::new(EMBEDDING, head_labels.len()).with_hidden(config.hidden);
    let refs: Vec<&super::features::Patch> = train_patches.iter().collect();
    let (head, standardizer, final_loss) = train(&model, &config.head, &refs, &device)?;

    let run = RunDir::create(&config.out).map_err(TrainError::from)?;
    let onnx_path = run.file("head.onnx");
    let graph = head.export(EMBEDDING, &standardizer)?;
    save(&graph, &onnx_path).map_err(TrainError::from)?;
    let tract = plan(&graph).map_err(TrainError::from)?;
    // burn and tract on the validation embeddings: the graph must compute the trained head.
    let sample: Vec<f32> = validation
        .iter()
        .flat_map(|r| &r.patches)
        .take(64)
        .flat_map(|p| p.embedding.iter().copied())
        .collect();
    let burn_logits = super::head::logits(
        &head.valid(),
        &standardizer,
        &sample,
        EMBEDDING,
        &crate::train::backend::inference_device(config.backend).map_err(TrainError::from)?,
    )?;
    let mut tract_max_difference = 0f32;
    for (row, embedding) in sample.chunks(EMBEDDING).enumerate() {
        let out = run_plan_outputs(&tract, &[1, EMBEDDING], embedding).map_err(TrainError::from)?;
        for (j, z) in out.first().into_iter().flatten().enumerate() {
            let b = burn_logits[row * head_labels.len() + j];
            tract_max_difference = tract_max_difference.max((z - b).abs());
        }
    }
    if tract_max_difference > 1e-3 {
        return Err(EventHeadError::Config(format!(
            "the exported head differs from burn's by {tract_max_difference} on validation \
             embeddings"
        )));
    }

    let validation_head = head_scores(&tract, &validation)?;
    let test_head = head_scores(&tract, &test)?;
    let groups = AudioEventsSettings::default().events_or_defaults(0.5);
    let rule = MatchRule::default();
    let share = config.budget_per_hour / labels.len() as f64;
    let (mut chosen, mut tested) = (Vec::new(), Vec::new());
    let mut patch_auroc = Vec::new();
    for label in labels {
        let mut sources = Vec::new();
        if let Some(index) = head_labels.iter().position(|l| l == label) {
            sources.push(ScoreSource::Head(index));
        }
        if let Some(group) = groups.iter().find(|g| g.label == *label) {
            let members = group
                .classes
                .iter()
                .filter_map(|c| classes.index(c).ok().map(|i| (i, c.clone())))
                .collect();
            sources.push(ScoreSource::AudioSet(members));
        }
        let scored: Vec<(ScoreSource, Vec<Vec<f32>>)> = sources
            .into_iter()
            .map(|s| {
                let scores = label_scores(&validation, &validation_head, &s);
                (s, scores)
            })
            .collect();
        for (source, scores) in &scored {
            let (mut values, mut truth) = (Vec::new(), Vec::new());
            for (rec, rec_scores) in validation.iter().zip(scores) {
                for (patch, &score) in rec.patches.iter().zip(rec_scores) {
                    let holds = patch.label.is_some_and(|l| labels[l] == *label);
                    if patch.partial || (patch.label.is_some() && !holds) {
                        continue;
                    }
                    values.push(f64::from(score));
                    truth.push(holds);
                }
            }
            if let Ok(auc) = crate::eval::roc_auc(&values, &truth) {
                patch_auroc.push((label.clone(), source_name(source), auc));
            }
        }
        let has_events = validation
            .iter()
            .flat_map(|r| &r.events)
            .any(|e| e.label == *label);
        if !has_events {
            unfitted.push((label.clone(), "no validation events: no settings".into()));
            continue;
        }
        let Some(settings) = choose(label, &scored, &validation, share, rule) else {
            unfitted.push((
                label.clone(),
                format!("no threshold keeps it within {share:.2} false alarms per hour"),
            ));
            continue;
        };
        if settings.detected == 0 {
            // The highest threshold detecting nothing is not a setting; the label is left out
            // of the profile section rather than shipped as one that can never alert usefully.
            unfitted.push((
                label.clone(),
                format!(
                    "detects none of its {} validation events within {share:.2} false alarms \
                     per hour: left out",
                    settings.events
                ),
            ));
            continue;
        }
        if !test.is_empty() {
            let scores = label_scores(&test, &test_head, &settings.source);
            tested.extend(remeasure(&settings, &scores, &test, rule));
        }
        chosen.push(settings);
    }
    let summary = FitSummary {
        run: run.path.clone(),
        head_labels,
        validation: chosen,
        test: tested,
        unfitted,
        budget_per_hour: config.budget_per_hour,
        patch_hop_frames: config.patch_hop_frames,
        train_patches: train_patches.iter().filter(|p| !p.partial).count(),
        final_loss,
        tract_max_difference,
        validation_patch_auroc: patch_auroc,
        seconds: started.elapsed().as_secs_f64(),
    };
    run.write_json("fit.json", &summary)
        .map_err(TrainError::from)?;
    std::fs::write(
        run.file("audio_events.toml"),
        profile_section(&summary, &classes),
    )
    .map_err(|err| EventHeadError::Data {
        path: run.file("audio_events.toml"),
        problem: err.to_string(),
    })?;
    std::fs::write(run.file("report.md"), render(&summary)).map_err(|err| {
        EventHeadError::Data {
            path: run.file("report.md"),
            problem: err.to_string(),
        }
    })?;
    Ok(summary)
}

/// The class names a label's settings listen to, as a profile writes them.
fn class_names(settings: &LabelSettings, classes: &ClassMap) -> Vec<String> {
    match &settings.source {
        ScoreSource::Head(_) => vec![format!("{HEAD_PREFIX}{}", settings.label)],
        ScoreSource::AudioSet(members) => members
            .iter()
            .filter_map(|(i, _)| classes.name(*i).map(str::to_string))
            .collect(),
    }
}

/// The `[stream.audio_events]` section a profile pastes to use the fitted settings.
pub fn profile_section(summary: &FitSummary, classes: &ClassMap) -> String {
    let uses_head = summary
        .validation
        .iter()
        .any(|s| matches!(s.source, ScoreSource::Head(_)));
    let model = if uses_head { MODEL_NAME } else { "yamnet" };
    let mut out = format!(
        "# Fitted by `vigil-train audio-events fit` on the validation part for at most {} false \
         alarms per hour\n# of background; model = \"{model}\" on the stream.\n\
         [stream.audio_events]\n",
        summary.budget_per_hour
    );
    if summary.patch_hop_frames != 48 {
        let _ = writeln!(out, "patch_hop_frames = {}", summary.patch_hop_frames);
    }
    out.push_str("events = [\n");
    for s in &summary.validation {
        let names: Vec<String> = class_names(s, classes)
            .iter()
            .map(|c| format!("{c:?}"))
            .collect();
        let _ = writeln!(
            out,
            "    {{ label = {:?}, classes = [{}], on = {:.2}, off = {:.3}, open_after = {} }},",
            s.label,
            names.join(", "),
            s.on,
            s.off,
            s.open_after
        );
    }
    out.push_str("]\n");
    out
}

fn source_name(source: &ScoreSource) -> String {
    match source {
        ScoreSource::Head(_) => "head".to_string(),
        ScoreSource::AudioSet(m) => m
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(" · "),
    }
}

fn table(rows: &[LabelSettings]) -> String {
    let mut out = String::from(
        "| label | score | on | open_after | events | detected | median latency | false alarms | per hour |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for s in rows {
        let source = source_name(&s.source);
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} | {} | {} ({:.1} %) | {} | {} | {:.2} |",
            s.label,
            source,
            s.on,
            s.open_after,
            s.events,
            s.detected,
            100.0 * s.detected as f64 / s.events.max(1) as f64,
            s.median_latency_s
                .map_or("–".into(), |v| format!("{v:.2} s")),
            s.false_alarms,
            s.false_alarms_per_hour()
        );
    }
    out
}

/// The fit's report in Markdown: validation (where the settings were chosen) and test.
pub fn render(summary: &FitSummary) -> String {
    let mut out = format!(
        "Head on YAMNet's embedding for {} ({} training patches, final loss {:.4}; tract within \
         {:.1e} of burn); settings for at most {} false alarms per hour in all, fitted in {:.0} s.\n\n\
         Validation (settings chosen here):\n\n{}\n",
        summary.head_labels.join(", "),
        summary.train_patches,
        summary.final_loss,
        summary.tract_max_difference,
        summary.budget_per_hour,
        summary.seconds,
        table(&summary.validation)
    );
    out.push_str(
        "Patch ROC AUC on validation (patches holding the label against patches holding no \
         event):\n\n| label | score | ROC AUC |\n|---|---|---|\n",
    );
    for (label, source, auc) in &summary.validation_patch_auroc {
        let _ = writeln!(out, "| {label} | {source} | {auc:.4} |");
    }
    out.push('\n');
    if !summary.test.is_empty() {
        let _ = write!(
            out,
            "Test (never seen by the fit):\n\n{}\n",
            table(&summary.test)
        );
    }
    for (label, why) in &summary.unfitted {
        let _ = writeln!(out, "- {label}: {why}");
    }
    out
}

/// Copies the head into `models` and writes its manifest entry (the YAMNet model it reads
/// stays as it is). Returns the manifest's path.
pub fn install(
    summary: &FitSummary,
    yamnet: &str,
    models: &Path,
) -> Result<PathBuf, EventHeadError> {
    let dir = models.join("audio-events");
    std::fs::create_dir_all(&dir).map_err(|err| EventHeadError::Data {
        path: dir.clone(),
        problem: err.to_string(),
    })?;
    let head = dir.join("head.onnx");
    std::fs::copy(summary.run.join("head.onnx"), &head).map_err(|err| EventHeadError::Data {
        path: head.clone(),
        problem: err.to_string(),
    })?;
    let mut settings = toml_edit::Table::new();
    settings.insert("embedding_model", toml_edit::value(yamnet));
    let mut names = toml_edit::Array::new();
    for label in &summary.head_labels {
        names.push(label.as_str());
    }
    settings.insert("head_labels", toml_edit::value(names));
    let manifest = models.join("manifest.toml");
    upsert(
        &manifest,
        &ModelEntry {
            name: MODEL_NAME.into(),
            family: "audio_events".into(),
            description: format!(
                "a head on {yamnet}'s 1024-d embedding for {} (vigil-train audio-events fit)",
                summary.head_labels.join(", ")
            ),
            source: "trained by `vigil-train audio-events fit` on the audio-event development \
                     set's training part (models/audio-events/README.md)"
                .into(),
            files: vec![head],
            inputs: vec![TensorEntry {
                name: "embedding".into(),
                shape: vec![1, EMBEDDING],
            }],
            outputs: vec![TensorEntry {
                name: "logits".into(),
                shape: vec![1, summary.head_labels.len()],
            }],
            threshold: 0.5,
            settings,
        },
    )?;
    Ok(manifest)
}
