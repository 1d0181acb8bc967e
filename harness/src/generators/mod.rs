//! Generators: what to run and what to mutate. Corpus discovery, schedules (where a run is
//! pre-empted and where it is persisted and restored) and hostile mutations of snapshots.

pub mod mutations;
pub mod patterns;
pub mod programs;
pub mod seeds;
pub mod structured;

use amber_luau::Budget;
use std::path::{Path, PathBuf};

/// How a run is cut and persisted. Every persist goes through capture -> encode -> decode ->
/// validate -> restore into a fresh VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Never pre-empted: the reference run.
    Fresh,
    /// Pre-empted at every N-th tick, never persisted (the scheduler alone).
    Preempt(u64),
    /// Persisted at every pre-emption point in turn (each point a separate run), for scripts
    /// with at most `max` points.
    Exhaustive { max: u64 },
    /// Pre-empted at every tick, persisted at every N-th pre-emption of one run.
    Every(u64),
    /// Persisted at COUNT pre-emption points drawn from SEED, one run each.
    Random { seed: u64, count: u32 },
    /// Persisted right after every coroutine.yield of any coroutine (and of the main function).
    AtYields,
    /// Persisted at a few points, resumed in a child `amber resume` process.
    CrossProcess,
    /// The same snapshot restored K times at a few points; every copy must agree.
    Restores(u32),
    /// One run pre-empted at every tick and persisted at every 89th pre-emption, each state
    /// restored into a newer base image (this one plus a host library, [`upgraded_vm`]) and
    /// captured again from there: the extra global is hidden, and the run must not notice.
    Upgrade,
}

impl Schedule {
    /// The budget of each slice.
    pub fn budget(self) -> Budget {
        match self {
            Schedule::Fresh => Budget::unlimited(),
            Schedule::AtYields => Budget::unlimited().with_preemption_after_yields(),
            Schedule::Preempt(n) => Budget::ticks(n),
            _ => Budget::ticks(1),
        }
    }

    pub fn name(self) -> String {
        match self {
            Schedule::Fresh => "fresh".into(),
            Schedule::Preempt(n) => format!("preempt:{n}"),
            Schedule::Exhaustive { .. } => "exhaustive".into(),
            Schedule::Every(n) => format!("every:{n}"),
            Schedule::Random { seed, count } => format!("random:{seed}:{count}"),
            Schedule::AtYields => "at-yields".into(),
            Schedule::CrossProcess => "cross-process".into(),
            Schedule::Restores(k) => format!("restores:{k}"),
            Schedule::Upgrade => "upgrade".into(),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let number = |text: &str, what: &str| -> Result<u64, String> {
            match text.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("`{s}`: {what} must be a positive integer")),
            }
        };
        let mut parts = s.split(':');
        let head = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let schedule = match (head, rest.as_slice()) {
            ("fresh", []) => Schedule::Fresh,
            ("exhaustive", []) => Schedule::Exhaustive { max: EXHAUSTIVE_LIMIT },
            ("at-yields", []) => Schedule::AtYields,
            ("cross-process", []) => Schedule::CrossProcess,
            ("upgrade", []) => Schedule::Upgrade,
            ("preempt", [n]) => Schedule::Preempt(number(n, "the tick count")?),
            ("every", [n]) => Schedule::Every(number(n, "the persist interval")?),
            ("restores", [k]) => Schedule::Restores(
                u32::try_from(number(k, "the restore count")?).map_err(|_| format!("`{s}`: too many"))?,
            ),
            ("random", [seed]) => {
                Schedule::Random { seed: seed.parse().map_err(|_| format!("`{s}`: bad seed"))?, count: 10 }
            }
            ("random", [seed, count]) => Schedule::Random {
                seed: seed.parse().map_err(|_| format!("`{s}`: bad seed"))?,
                count: u32::try_from(number(count, "the count")?).map_err(|_| format!("`{s}`: count too large"))?,
            },
            _ => {
                return Err(format!(
                    "unknown schedule `{s}` (known: fresh, preempt:N, exhaustive, every:N, random:SEED[:COUNT], at-yields, cross-process, restores:K, upgrade)"
                ));
            }
        };
        Ok(schedule)
    }
}

/// The schedules `amber check` uses when none is given: about two minutes for the bundled
/// corpus on two cores.
pub fn default_schedules(seed: u64) -> Vec<Schedule> {
    vec![
        Schedule::Preempt(1),
        Schedule::Exhaustive { max: EXHAUSTIVE_LIMIT },
        Schedule::Every(97),
        Schedule::Random { seed, count: 20 },
        Schedule::AtYields,
        Schedule::Restores(3),
        Schedule::CrossProcess,
        Schedule::Upgrade,
    ]
}

/// The newer base image of the `upgrade` schedule: the deterministic image plus a host library
/// `hostlib` (`hostlib.version()` returns 2) that no corpus script knows.
pub fn upgraded_vm() -> Result<amber_luau::Vm, amber_luau::VmError> {
    fn version(_: &[amber_luau::Value]) -> Result<Vec<amber_luau::Value>, String> {
        Ok(vec![amber_luau::Value::Number(2.0)])
    }
    amber_luau::Vm::with_options(amber_luau::VmOptions {
        deterministic: true,
        libraries: vec![amber_luau::HostLibrary {
            name: "hostlib".into(),
            functions: vec![("version".into(), version as amber_luau::HostFunction)],
        }],
    })
}

/// Exhaustive runs cost one run per point: by default scripts with more points than this are
/// reported as skipped (`amber check --exhaustive-max` raises it for nightly runs).
pub const EXHAUSTIVE_LIMIT: u64 = 3000;

/// A small deterministic generator (SplitMix64) for random schedules.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The pre-emption points (1-based) a schedule persists at, one run each, given how many a
/// pre-empted-at-every-tick run has. `None`: the schedule persists within one run instead.
pub fn separate_points(schedule: Schedule, total: u64) -> Option<Vec<u64>> {
    let spread = |n: u64| -> Vec<u64> {
        if total == 0 {
            return vec![];
        }
        let n = n.min(total);
        let mut v: Vec<u64> = (0..n).map(|i| 1 + i * total / n).collect();
        v.dedup();
        v
    };
    match schedule {
        Schedule::Exhaustive { max } if total <= max => Some((1..=total).collect()),
        Schedule::Exhaustive { max } => Some(spread(max)),
        Schedule::Random { seed, count } => {
            if total == 0 {
                return Some(vec![]);
            }
            let mut rng = SplitMix(seed ^ total);
            let mut v: Vec<u64> = (0..count).map(|_| 1 + rng.next_u64() % total).collect();
            v.sort_unstable();
            v.dedup();
            Some(v)
        }
        Schedule::CrossProcess => Some(spread(3)),
        Schedule::Restores(_) => Some(spread(4)),
        _ => None,
    }
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
