//! Score files: CSV with a header naming a `score` and a `label` column, in any order among
//! any others, one sample per line.
//!
//! Deliberately small rather than a full RFC 4180 reader: fields are split at every comma
//! (no quoted commas), each is trimmed and may be wrapped in double quotes, blank lines are
//! skipped, CRLF line ends and a UTF-8 byte-order mark are accepted. Every row must have as
//! many fields as the header, so a row that lost a field is reported instead of read
//! shifted. Labels are `0`/`1` or `true`/`false` (any case, as pandas and NumPy write them).

use std::path::Path;

use super::EvalError;

/// What is wrong with one line of a score file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvProblem {
    #[error("empty file, expected a header with `score` and `label` columns")]
    NoHeader,
    #[error("no `{column}` column in the header ({header})")]
    MissingColumn {
        column: &'static str,
        header: String,
    },
    #[error("the header names `{column}` twice")]
    DuplicateColumn { column: &'static str },
    #[error("{found} fields, the header has {expected} (a missing or extra field?)")]
    FieldCount { expected: usize, found: usize },
    #[error("empty `{column}` field")]
    EmptyField { column: &'static str },
    #[error("score {value:?} is not a number")]
    NotANumber { value: String },
    #[error("score {value:?} is not a finite number")]
    NonFinite { value: String },
    #[error("label {value:?} is not 0, 1, true or false")]
    BadLabel { value: String },
}

/// Reads `(scores, labels)` from a CSV score file (format in the module notes), for
/// [`evaluate`](super::evaluate) and the single metrics.
pub fn read_scores_csv(path: impl AsRef<Path>) -> Result<(Vec<f64>, Vec<bool>), EvalError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|(line, problem)| match problem {
        Some(problem) => EvalError::Csv {
            path: path.to_path_buf(),
            line,
            problem,
        },
        None => EvalError::CsvNoRows {
            path: path.to_path_buf(),
        },
    })
}

/// One field: trimmed, and unwrapped from a pair of double quotes if it has them.
fn field(raw: &str) -> &str {
    let t = raw.trim();
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
}

type Parsed = (Vec<f64>, Vec<bool>);

/// Parses the text of a score file; the error is the 1-based line and the problem, or no
/// problem when there is a header but no row.
fn parse(text: &str) -> Result<Parsed, (usize, Option<CsvProblem>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // `lines()` drops the "\n" and a "\r" before it; numbering counts blank lines too, so the
    // number is the one an editor shows.
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());

    let Some((header_line, header)) = lines.next() else {
        return Err((1, Some(CsvProblem::NoHeader)));
    };
    let names: Vec<&str> = header.split(',').map(field).collect();
    let column = |name: &'static str| -> Result<usize, (usize, Option<CsvProblem>)> {
        let mut at = names.iter().enumerate().filter(|(_, n)| **n == name);
        match (at.next(), at.next()) {
            (Some((i, _)), None) => Ok(i),
            (Some(_), Some(_)) => Err((
                header_line,
                Some(CsvProblem::DuplicateColumn { column: name }),
            )),
            (None, _) => Err((
                header_line,
                Some(CsvProblem::MissingColumn {
                    column: name,
                    header: names.join(","),
                }),
            )),
        }
    };
    let (score_col, label_col) = (column("score")?, column("label")?);

    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for (line, row) in lines {
        let fail = |problem| Err((line, Some(problem)));
        let fields: Vec<&str> = row.split(',').map(field).collect();
        if fields.len() != names.len() {
            return fail(CsvProblem::FieldCount {
                expected: names.len(),
                found: fields.len(),
            });
        }
        let (score, label) = (fields[score_col], fields[label_col]);
        if score.is_empty() {
            return fail(CsvProblem::EmptyField { column: "score" });
        }
        if label.is_empty() {
            return fail(CsvProblem::EmptyField { column: "label" });
        }
        let value = match score.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            // Rust parses "nan" and "inf"; a score file holding them is broken, and saying so
            // here names the line, which the metrics' index-based error cannot.
            Ok(_) => {
                return fail(CsvProblem::NonFinite {
                    value: score.to_string(),
                });
            }
            Err(_) => {
                return fail(CsvProblem::NotANumber {
                    value: score.to_string(),
                });
            }
        };
        let positive = match label.to_ascii_lowercase().as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return fail(CsvProblem::BadLabel {
                    value: label.to_string(),
                });
            }
        };
        scores.push(value);
        labels.push(positive);
    }
    if scores.is_empty() {
        return Err((header_line, None));
    }
    Ok((scores, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> (usize, Option<CsvProblem>) {
        parse(text).unwrap_err()
    }

    #[test]
    fn reads_columns_in_any_order() {
        let text = "\u{feff}id,label,score\r\n7,1,0.5\r\n\r\n8, false ,\"-2e-3\"\n9,TRUE,3\n";
        let (scores, labels) = parse(text).unwrap();
        assert_eq!(scores, [0.5, -0.002, 3.0]);
        assert_eq!(labels, [true, false, true]);
    }

    #[test]
    fn names_the_line_and_the_problem() {
        assert_eq!(problem(""), (1, Some(CsvProblem::NoHeader)));
        assert_eq!(
            problem("score,target\n0.1,1\n"),
            (
                1,
                Some(CsvProblem::MissingColumn {
                    column: "label",
                    header: "score,target".into()
                })
            )
        );
        assert_eq!(
            problem("score,label,score\n"),
            (1, Some(CsvProblem::DuplicateColumn { column: "score" }))
        );
        // Line numbers count blank lines.
        assert_eq!(
            problem("score,label\n0.1,1\n\n0.2\n"),
            (
                4,
                Some(CsvProblem::FieldCount {
                    expected: 2,
                    found: 1
                })
            )
        );
        assert_eq!(
            problem("score,label\n,1\n"),
            (2, Some(CsvProblem::EmptyField { column: "score" }))
        );
        assert_eq!(
            problem("score,label\n0.1,\n"),
            (2, Some(CsvProblem::EmptyField { column: "label" }))
        );
        assert_eq!(
            problem("score,label\n0.1x,1\n"),
            (
                2,
                Some(CsvProblem::NotANumber {
                    value: "0.1x".into()
                })
            )
        );
        assert_eq!(
            problem("score,label\nNaN,1\n"),
            (
                2,
                Some(CsvProblem::NonFinite {
                    value: "NaN".into()
                })
            )
        );
        assert_eq!(
            problem("score,label\n0.3,2\n"),
            (2, Some(CsvProblem::BadLabel { value: "2".into() }))
        );
        assert_eq!(problem("score,label\n\n"), (1, None));
    }
}
