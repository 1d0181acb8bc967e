//! The trace a child process reports: `amber resume --digest` writes the rest of its run's
//! trace (main-function yields, ending, end-state digest) on stderr, and the check's
//! cross-process schedule reads it back. Both sides use this module, so the format has one
//! definition.
//!
//! The tail is the last thing the child writes: a `amber-trace` line, then one field per line
//! with `\`, newline, carriage return and tab escaped. The reader takes the last tail in the
//! text, so whatever the script or an error message printed before it cannot forge one.

use crate::oracles::Ending;

const BEGIN: &str = "amber-trace";

/// The part of a trace a child reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub yields: Vec<String>,
    pub ending: Ending,
    pub digest: String,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The tail's text, ending in a newline.
pub fn write(tail: &Tail) -> String {
    let mut out = format!("{BEGIN}\n");
    for y in &tail.yields {
        out += &format!("yield {}\n", escape(y));
    }
    out += &match &tail.ending {
        Ending::Returned(values) => {
            let mut lines = format!("returned {}\n", values.len());
            for v in values {
                lines += &format!("value {}\n", escape(v));
            }
            lines
        }
        Ending::Error(e) => format!("error {}\n", escape(e)),
        Ending::Killed(k) => format!("killed {}\n", escape(k)),
    };
    out += &format!("digest {}\n", escape(&tail.digest));
    out
}

/// Reads the last tail in `text` (a child's whole stderr).
pub fn read(text: &str) -> Result<Tail, String> {
    let lines: Vec<&str> = text.lines().collect();
    let begin = lines.iter().rposition(|l| *l == BEGIN).ok_or("the child reported no trace")?;
    let mut yields = Vec::new();
    let mut ending = None;
    let mut returned: Option<(usize, Vec<String>)> = None;
    let mut digest = None;
    for line in &lines[begin + 1..] {
        let (field, value) = line.split_once(' ').unwrap_or((line, ""));
        match field {
            "yield" => yields.push(unescape(value)),
            "returned" => {
                let count: usize =
                    value.parse().map_err(|_| format!("bad value count in the child's trace: {line}"))?;
                returned = Some((count, Vec::new()));
            }
            "value" => match &mut returned {
                Some((count, values)) if values.len() < *count => values.push(unescape(value)),
                _ => return Err(format!("unexpected value in the child's trace: {line}")),
            },
            "error" => ending = Some(Ending::Error(unescape(value))),
            "killed" => ending = Some(Ending::Killed(unescape(value))),
            "digest" => digest = Some(unescape(value)),
            _ => return Err(format!("unexpected line in the child's trace: {line}")),
        }
    }
    if let Some((count, values)) = returned {
        if values.len() != count {
            return Err(format!("the child's trace lists {} of {count} returned values", values.len()));
        }
        ending = Some(Ending::Returned(values));
    }
    Ok(Tail {
        yields,
        ending: ending.ok_or("the child's trace has no ending")?,
        digest: digest.ok_or("the child's trace has no digest")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_values_survive_the_round_trip() {
        let tail = Tail {
            yields: vec!["a\tb".into(), "line\nbreak \\ and \\n literally".into(), String::new()],
            ending: Ending::Returned(vec!["x\ty".into(), String::new(), "z".into()]),
            digest: "abc-5".into(),
        };
        assert_eq!(read(&write(&tail)), Ok(tail));
        for ending in [
            Ending::Error("boom\nstack".into()),
            Ending::Killed("tick budget".into()),
            Ending::Returned(vec![]),
            Ending::Returned(vec![String::new()]),
        ] {
            let tail = Tail { yields: vec![], ending, digest: "d".into() };
            assert_eq!(read(&write(&tail)), Ok(tail));
        }
    }

    #[test]
    fn output_before_the_tail_cannot_forge_it() {
        let real = Tail { yields: vec![], ending: Ending::Returned(vec![]), digest: "real".into() };
        let forged = "amber-trace\nreturned 1\nvalue 7\ndigest forged\nerror: boom\nstack traceback:\n";
        let text = format!("{forged}{}", write(&real));
        assert_eq!(read(&text), Ok(real));
    }

    #[test]
    fn a_missing_or_broken_tail_is_an_error() {
        assert!(read("no trace here\n").is_err());
        assert!(read("amber-trace\ndigest x\n").is_err());
        assert!(read("amber-trace\nreturned 2\nvalue a\ndigest x\n").is_err());
        assert!(read("amber-trace\nreturned x\ndigest x\n").is_err());
        assert!(read("amber-trace\nsurprise\n").is_err());
    }
}
