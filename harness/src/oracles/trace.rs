//! A run's observable trace (ARCHITECTURE.md, "The oracle"): everything it printed (with the
//! address forms of `tostring` normalised), what its main function yielded, how it ended
//! (returned values, error message or kill reason) and the digest of its end state.

use crate::generators::Schedule;
use crate::generators::programs::DifferentialCase;
use crate::runner::{self, Quiet};
use amber_luau::Script;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Returned(Vec<String>),
    Error(String),
    Killed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub output: Vec<u8>,
    /// Values yielded by the main function, one line per yield.
    pub yields: Vec<String>,
    pub ending: Ending,
    /// Digest of the state reachable from the task's globals at the end (see [`state_digest`]).
    pub digest: String,
}

impl Trace {
    /// The trace as text lines, for comparison and reports.
    pub fn lines(&self) -> Vec<String> {
        let output = normalize_addresses(&String::from_utf8_lossy(&self.output));
        let mut lines: Vec<String> = output.lines().map(|l| format!("out: {l}")).collect();
        lines.extend(self.yields.iter().map(|y| format!("yield: {}", normalize_addresses(y))));
        lines.push(match &self.ending {
            Ending::Returned(v) => format!("returned: {}", normalize_addresses(&v.join("\t"))),
            Ending::Error(e) => format!("error: {}", normalize_addresses(e)),
            Ending::Killed(r) => format!("killed: {r}"),
        });
        lines.push(format!("state digest: {}", self.digest));
        lines
    }
}

/// The first difference between two traces, if any: (line number, expected, actual).
pub fn first_difference(expected: &Trace, actual: &Trace) -> Option<(usize, String, String)> {
    let (a, b) = (expected.lines(), actual.lines());
    if a == b {
        return None;
    }
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).cloned().unwrap_or_else(|| "<end of trace>".into());
        let y = b.get(i).cloned().unwrap_or_else(|| "<end of trace>".into());
        if x != y {
            return Some((i + 1, x, y));
        }
    }
    None
}

/// The differential oracle: a program's fresh run and its runs persisted at each of `points`
/// (fractions 0..=255 of its pre-emption points) produce the same trace. `Err` describes the
/// first difference, with the program.
pub fn persisted_runs_agree(source: &str, points: &[u8]) -> Result<(), String> {
    let script = Script::compile(source, "=differential").map_err(|e| format!("{e}\n{source}"))?;
    let fresh = runner::run_script(&script, Schedule::Fresh, &mut Quiet).map_err(|e| format!("{e}\n{source}"))?;
    let total = fresh.counts.ticks;
    if total == 0 {
        return Ok(());
    }
    for &p in points {
        let at = 1 + (total - 1) * u64::from(p) / 255;
        let run = runner::run_persisted_once(&script, at).map_err(|e| format!("point {at}: {e}\n{source}"))?;
        if let Some((line, want, got)) = first_difference(&fresh.trace, &run.trace) {
            return Err(format!("persisted at {at} of {total}: line {line}: expected `{want}`, got `{got}`\n{source}"));
        }
    }
    Ok(())
}

/// [`persisted_runs_agree`] on a generated case.
pub fn differential(case: &DifferentialCase) -> Result<(), String> {
    persisted_runs_agree(&case.program.source(), &case.points)
}

/// Replaces the address forms `tostring` gives tables, functions, threads, userdata and buffers
/// (`table: 0x00007f...`) with `0x<address>`: addresses differ between runs and processes.
pub fn normalize_addresses(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'0' && bytes.get(i + 1) == Some(&b'x') && i >= 2 && &bytes[i - 2..i] == b": " {
            let digits = bytes[i + 2..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
            if digits >= 8 {
                out.push_str("0x<address>");
                i += 2 + digits;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_and_nothing_else() {
        assert_eq!(
            normalize_addresses("t = table: 0x00007f1234abcd00, f = function: 0x0000000012345678 ok"),
            "t = table: 0x<address>, f = function: 0x<address> ok"
        );
        assert_eq!(normalize_addresses("0x1234 and 255 = 0xff, héllo"), "0x1234 and 255 = 0xff, héllo");
    }
}
