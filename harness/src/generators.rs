//! Generators: what to run. Corpus discovery and pre-emption schedules.

use amber_luau::Budget;
use std::path::{Path, PathBuf};

/// How a run is cut into time slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Never pre-empted: the reference run.
    Fresh,
    /// Pre-empted at every N-th interrupt tick (1: at every tick).
    Every(u64),
}

impl Schedule {
    pub fn budget(self) -> Budget {
        match self {
            Schedule::Fresh => Budget::unlimited(),
            Schedule::Every(n) => Budget::ticks(n),
        }
    }

    pub fn name(self) -> String {
        match self {
            Schedule::Fresh => "fresh".into(),
            Schedule::Every(n) => format!("every:{n}"),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "fresh" {
            return Ok(Schedule::Fresh);
        }
        if let Some(n) = s.strip_prefix("every:") {
            let n: u64 = n.parse().map_err(|_| format!("`{s}`: the count after every: must be a positive integer"))?;
            if n == 0 {
                return Err(format!("`{s}`: the count after every: must be at least 1"));
            }
            return Ok(Schedule::Every(n));
        }
        Err(format!("unknown schedule `{s}` (known: fresh, every:N)"))
    }
}

/// The schedules `amber check` uses when none is given.
pub fn default_schedules() -> Vec<Schedule> {
    vec![Schedule::Every(1), Schedule::Every(7), Schedule::Every(1000)]
}

/// The bundled corpus: `corpus/scripts` under the current directory, else under the workspace
/// this binary was built from.
pub fn default_corpus_dir() -> PathBuf {
    let here = PathBuf::from("corpus/scripts");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("corpus").join("scripts")
}

/// Every `.luau`/`.lua` file under the given paths (files are taken as they are), sorted.
pub fn discover_scripts(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let p = entry?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "luau" || e == "lua") {
                        out.push(p);
                    }
                }
            }
        } else if path.exists() {
            out.push(path.clone());
        } else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{}: no such file", path.display())));
        }
    }
    out.sort();
    Ok(out)
}
