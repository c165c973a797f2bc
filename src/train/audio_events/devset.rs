//! The development set's file list (`models/audio-events/devset.tsv`): which converted source
//! file plays which role in which part.

use std::fmt;
use std::path::{Path, PathBuf};

use super::AudioEventsError;

/// The three parts; a package supplies one part per role, so no recording of a kind is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Train,
    Validation,
    Test,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Train, Part::Validation, Part::Test];

    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Validation => "validation",
            Part::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Minutes of mix made when none are asked for: train feeds a classifier head, validation
    /// and test give ≥ ~30 events per label at the default spacing.
    pub fn default_minutes(self) -> f64 {
        match self {
            Part::Train => 120.0,
            Part::Validation | Part::Test => 30.0,
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a file is in the mixes: a labelled event or a kind of background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Gunshot,
    Explosion,
    Screaming,
    Shout,
    GlassBreaking,
    Impact,
    Speech,
    Music,
    Traffic,
    Crowd,
    Ambience,
    /// Footsteps, doors, keyboard clicks: mixed in unlabelled, a detector must not alarm on them.
    HardNegative,
}

impl Role {
    pub const ALL: [Role; 12] = [
        Role::Gunshot,
        Role::Explosion,
        Role::Screaming,
        Role::Shout,
        Role::GlassBreaking,
        Role::Impact,
        Role::Speech,
        Role::Music,
        Role::Traffic,
        Role::Crowd,
        Role::Ambience,
        Role::HardNegative,
    ];
    /// The event labels, in the order tables list them.
    pub const EVENTS: [Role; 6] = [
        Role::Gunshot,
        Role::Explosion,
        Role::Screaming,
        Role::Shout,
        Role::GlassBreaking,
        Role::Impact,
    ];
    /// The kinds that take turns in the ambient layer.
    pub const AMBIENT: [Role; 4] = [Role::Music, Role::Traffic, Role::Crowd, Role::Ambience];

    pub fn name(self) -> &'static str {
        match self {
            Role::Gunshot => "gunshot",
            Role::Explosion => "explosion",
            Role::Screaming => "screaming",
            Role::Shout => "shout",
            Role::GlassBreaking => "glass_breaking",
            Role::Impact => "impact",
            Role::Speech => "speech",
            Role::Music => "music",
            Role::Traffic => "traffic",
            Role::Crowd => "crowd",
            Role::Ambience => "ambience",
            Role::HardNegative => "hard_negative",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn is_event(self) -> bool {
        Role::EVENTS.contains(&self)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The event labels as the event scorer takes them.
pub fn event_labels() -> Vec<String> {
    Role::EVENTS.iter().map(|r| r.name().to_string()).collect()
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// 1-based line in the list.
    pub line: usize,
    pub part: Part,
    pub role: Role,
    pub package: String,
    pub version: String,
    /// Path inside the package; the converted file is `<sources>/<package>/<path>.wav`.
    pub path: String,
    pub duration_s: f64,
    pub licence: String,
}

impl Entry {
    /// The converted 16 kHz WAV under the fetch script's `sources` folder.
    pub fn wav_path(&self, sources: &Path) -> PathBuf {
        sources
            .join(&self.package)
            .join(format!("{}.wav", self.path))
    }

    /// `package/path` with commas replaced, for the CSV `source` column.
    pub fn source(&self) -> String {
        format!("{}/{}", self.package, self.path).replace(',', ";")
    }
}

pub const HEADER: [&str; 7] = [
    "part",
    "role",
    "package",
    "version",
    "path",
    "duration_s",
    "licence",
];

/// Reads the list: a tab-separated header naming [`HEADER`] in order, then one row per file.
/// Blank lines are skipped; any other malformed line is an error naming it.
pub fn read_list(path: &Path) -> Result<Vec<Entry>, AudioEventsError> {
    let text = std::fs::read_to_string(path).map_err(|source| AudioEventsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, problem: String| AudioEventsError::List {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = rows.next() else {
        return Err(bad(1, "empty list, expected a header line".into()));
    };
    let names: Vec<&str> = header.split('\t').collect();
    if names != HEADER {
        return Err(bad(
            header_line,
            format!(
                "header {:?}, expected the tab-separated columns {}",
                names.join(" "),
                HEADER.join(", ")
            ),
        ));
    }
    let mut entries = Vec::new();
    for (line, row) in rows {
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() != HEADER.len() {
            return Err(bad(
                line,
                format!(
                    "{} tab-separated columns, expected {}",
                    fields.len(),
                    HEADER.len()
                ),
            ));
        }
        let part = Part::parse(fields[0]).ok_or_else(|| {
            bad(
                line,
                format!("unknown part {:?} (train, validation or test)", fields[0]),
            )
        })?;
        let role = Role::parse(fields[1]).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            bad(
                line,
                format!("unknown role {:?} (one of {})", fields[1], names.join(", ")),
            )
        })?;
        let duration_s = match fields[5].parse::<f64>() {
            Ok(d) if d.is_finite() && d >= 0.0 => d,
            _ => {
                return Err(bad(
                    line,
                    format!("duration {:?} is not a number of seconds", fields[5]),
                ));
            }
        };
        for (col, value) in [(2, fields[2]), (3, fields[3]), (4, fields[4])] {
            if value.is_empty() {
                return Err(bad(line, format!("empty {}", HEADER[col])));
            }
        }
        if fields[4].starts_with('/') || fields[4].split('/').any(|c| c == "..") {
            return Err(bad(
                line,
                format!(
                    "path {:?} must be relative to the package root, without `..`",
                    fields[4]
                ),
            ));
        }
        entries.push(Entry {
            line,
            part,
            role,
            package: fields[2].to_string(),
            version: fields[3].to_string(),
            path: fields[4].to_string(),
            duration_s,
            licence: fields[6].to_string(),
        });
    }
    Ok(entries)
}
