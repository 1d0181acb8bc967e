//! Oracles: what must agree between a fresh run and an interrupted one.
//!
//! Today a run's observable trace is what it printed, what its main function yielded and how it
//! ended (returned values, error message or kill reason). The end-state digest of ARCHITECTURE.md
//! joins it once capture exists.

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
}

impl Trace {
    /// The trace as text lines, for comparison and reports.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> =
            String::from_utf8_lossy(&self.output).lines().map(|l| format!("out: {l}")).collect();
        lines.extend(self.yields.iter().map(|y| format!("yield: {y}")));
        lines.push(match &self.ending {
            Ending::Returned(v) => format!("returned: {}", v.join("\t")),
            Ending::Error(e) => format!("error: {e}"),
            Ending::Killed(r) => format!("killed: {r}"),
        });
        lines
    }
}

/// The first difference between two traces, if any: (line number, expected, actual).
pub fn first_difference(expected: &Trace, actual: &Trace) -> Option<(usize, String, String)> {
    if expected == actual {
        return None;
    }
    let (a, b) = (expected.lines(), actual.lines());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).cloned().unwrap_or_else(|| "<end of trace>".into());
        let y = b.get(i).cloned().unwrap_or_else(|| "<end of trace>".into());
        if x != y {
            return Some((i + 1, x, y));
        }
    }
    // Equal as lines but different bytes (e.g. a trailing newline): report the byte lengths.
    Some((0, format!("{} output bytes", expected.output.len()), format!("{} output bytes", actual.output.len())))
}
