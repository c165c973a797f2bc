//! YAMNet's class map: `index,mid,display_name`, one line per class, display names quoted
//! when they contain commas ("Gunshot, gunfire").

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("class map line {line}: {detail}: {path}")]
    Malformed {
        line: usize,
        detail: String,
        path: PathBuf,
    },
    #[error("class map: {detail}: {path}")]
    Io { detail: String, path: PathBuf },
    #[error("no AudioSet class named {name:?} in the class map")]
    UnknownClass { name: String },
}

/// How a profile names a learned head's output among the classes of an event.
pub const HEAD_PREFIX: &str = "head:";

#[derive(Debug, Clone)]
pub struct ClassMap {
    names: Vec<String>,
}

/// Splits one CSV record with RFC 4180 quoting (no embedded newlines in this file).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(field) = fields.last_mut() {
                    field.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    Ok(fields)
}

impl ClassMap {
    pub fn load(path: &Path) -> Result<Self, LabelError> {
        let text = std::fs::read_to_string(path).map_err(|err| LabelError::Io {
            detail: err.to_string(),
            path: path.into(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, LabelError> {
        let malformed = |line: usize, detail: String| LabelError::Malformed {
            line,
            detail,
            path: path.into(),
        };
        let mut names = Vec::new();
        for (ix, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let fields = split_csv(line).map_err(|d| malformed(ix + 1, d))?;
            let [index, _mid, name] = fields.as_slice() else {
                return Err(malformed(
                    ix + 1,
                    format!("expected 3 fields, got {}", fields.len()),
                ));
            };
            let index: usize = index
                .trim()
                .parse()
                .map_err(|_| malformed(ix + 1, format!("index {index:?} is not a number")))?;
            if index != names.len() {
                return Err(malformed(
                    ix + 1,
                    format!("index {index} out of order, expected {}", names.len()),
                ));
            }
            names.push(name.clone());
        }
        if names.is_empty() {
            return Err(malformed(1, "no classes".into()));
        }
        Ok(Self { names })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The map with `extra` classes after the model's own: a learned head's labels, named
    /// `head:<label>` so that no AudioSet display name can collide with them.
    pub fn with_head(mut self, labels: &[String]) -> Self {
        self.names
            .extend(labels.iter().map(|label| format!("{HEAD_PREFIX}{label}")));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    pub fn index(&self, name: &str) -> Result<usize, LabelError> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| LabelError::UnknownClass { name: name.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_with_commas_parse() {
        let map = ClassMap::parse(
            "index,mid,display_name\n0,/m/a,Speech\n1,/m/b,\"Gunshot, gunfire\"\n",
            Path::new("t.csv"),
        )
        .unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.index("Gunshot, gunfire").unwrap(), 1);
        assert!(matches!(
            map.index("Nope"),
            Err(LabelError::UnknownClass { .. })
        ));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err =
            ClassMap::parse("h\n0,/m/a,Speech\n2,/m/b,Cat\n", Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = ClassMap::parse("h\n0,\"unterminated\n", Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
        assert!(ClassMap::parse("h\n", Path::new("t.csv")).is_err());
    }
}
