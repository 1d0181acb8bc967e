//! Untrusted-snapshot intake for `amber validate` and `amber inspect`: the limits file, the
//! snapshot files a command line names (files, directories, globs), validation of many files in
//! parallel, and the report writers for people (text) and programs (JSON, whose shape
//! `docs/validate-report.schema.json` specifies; SARIF is [`crate::sarif`]).

use amber_luau::{PermanentRegistry, SourceCatalog};
use amber_validator::{Limits, Report};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads a limits file (TOML). Every key is optional; unknown keys are errors, so a typo never
/// silently loosens a gate.
///
/// ```toml
/// max_input_bytes = 1048576
/// max_objects = 100000
/// codecs = ["vec2"]
/// permanents = ["@globals", "print", "string", "string.format"]   # default: the standard base image
/// ```
pub fn read_limits(path: &Path) -> Result<Limits, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_limits(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse_limits(text: &str) -> Result<Limits, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut limits = default_limits()?;
    for (key, value) in &table {
        let number = || -> Result<usize, String> {
            value
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("`{key}` must be a non-negative integer"))
        };
        let strings = || -> Result<Vec<String>, String> {
            value
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| format!("`{key}` must be an array of strings"))
        };
        match key.as_str() {
            "max_input_bytes" => limits.max_input_bytes = number()?,
            "max_objects" => limits.max_objects = number()?,
            "max_string_bytes" => limits.max_string_bytes = number()?,
            "max_table_entries" => limits.max_table_entries = number()?,
            "max_buffer_bytes" => limits.max_buffer_bytes = number()?,
            "max_stack_slots" => limits.max_stack_slots = number()?,
            "max_frames" => limits.max_frames = number()?,
            "max_scripts" => limits.max_scripts = number()?,
            "max_permanents" => limits.max_permanents = number()?,
            "max_upvalues" => limits.max_upvalues = number()?,
            "max_global_names" => limits.max_global_names = number()?,
            "max_diagnostics" => limits.max_diagnostics = number()?,
            "max_memory" => {
                limits.max_memory = Some(match value.as_str() {
                    Some(text) => parse_size(text).map_err(|e| format!("`max_memory`: {e}"))?,
                    None => number()?,
                })
            }
            "codecs" => limits.codecs = strings()?.into_iter().collect(),
            "permanents" => {
                let registry = PermanentRegistry::standard().map_err(|e| e.to_string())?;
                let mut allow = std::collections::BTreeMap::new();
                for name in strings()? {
                    let kind = registry.kind(&name).ok_or_else(|| {
                        format!("`permanents`: `{name}` is not a permanent of this build's base image")
                    })?;
                    allow.insert(name, kind);
                }
                limits.permanents = Some(allow);
            }
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    Ok(limits)
}

/// A size in bytes: a number with an optional unit (`B`, `KiB`, `MiB`, `GiB`, or `KB`, `MB`,
/// `GB` in powers of ten), e.g. `64MiB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size (e.g. 64MiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("`{other}` is not a size unit (B, KiB, MiB, GiB, KB, MB, GB)")),
    };
    let bytes = n.checked_mul(scale).filter(|&b| b > 0).ok_or_else(|| format!("`{text}`: out of range"))?;
    usize::try_from(bytes).map_err(|_| format!("`{text}`: out of range"))
}

/// The default intake policy: default sizes, the standard base image's permanents, no codecs,
/// and this runtime's identity (a snapshot of another Luau release, flag set or base image is
/// refused by the validator).
///
/// Making the allowlist needs the base image's registry: a VM made once per process. Under
/// memory pressure that fails, as an error.
pub fn default_limits() -> Result<Limits, String> {
    let registry = PermanentRegistry::standard().map_err(|e| format!("the base image's registry: {e}"))?;
    Ok(Limits {
        permanents: Some(registry.allowlist()),
        runtime: Some(amber_luau::runtime_identity()),
        object_sizes: Some(amber_luau::memory_model()),
        ..Limits::default()
    })
}

/// The verdict on one snapshot file.
pub struct Verdict {
    pub file: String,
    pub result: Result<Summary, Report>,
}

/// What a valid snapshot holds, for the text report.
pub struct Summary {
    pub objects: usize,
    pub scripts: usize,
    pub bytes: usize,
}

/// The snapshot files named by `inputs`: files as given, every `*.snap` under a directory
/// (recursively, sorted), and the matches of a glob pattern (`incoming/**/*.snap`, for shells
/// and CI inputs that do not expand it). A name that is none of these is an error, as is a
/// pattern or directory that yields nothing: a gate that silently checks nothing passes.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy();
        if input.is_dir() {
            let before = out.len();
            snapshots_under(input, &mut out).map_err(|e| format!("{}: {e}", input.display()))?;
            out[before..].sort();
            if out.len() == before {
                return Err(format!("{}: no .snap files in this directory", input.display()));
            }
        } else if input.exists() || !text.contains(['*', '?', '[']) {
            out.push(input.clone());
        } else {
            let paths = glob::glob(&text).map_err(|e| format!("{text}: not a valid pattern: {e}"))?;
            let before = out.len();
            for p in paths {
                let p = p.map_err(|e| format!("{text}: {e}"))?;
                if p.is_file() {
                    out.push(p);
                }
            }
            if out.len() == before {
                return Err(format!("{text}: no files match this pattern"));
            }
        }
    }
    Ok(out)
}

fn snapshots_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    // An explicit stack, not recursion: directory depth is whatever the file system has.
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "snap") {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Validates one file. An unreadable file is an I/O error (the caller's exit code 2), not a
/// verdict.
pub fn validate_file(path: &Path, limits: &Limits, catalog: &SourceCatalog) -> Result<Verdict, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let result = amber_validator::validate(&bytes, limits, catalog).map(|v| Summary {
        objects: v.view().object_count(),
        scripts: v.view().scripts.len(),
        bytes: bytes.len(),
    });
    Ok(Verdict { file: path.display().to_string(), result })
}

/// Validates `files` on `jobs` threads; verdicts come back in the order of `files`.
/// `progress(done, total)` is called after each file.
pub fn validate_files(
    files: &[PathBuf],
    limits: &Limits,
    catalog: &SourceCatalog,
    jobs: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Verdict>, String> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Verdict, String>>>> = files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, files.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let verdict = validate_file(path, limits, catalog);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(verdict);
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, files.len());
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().ok().flatten().unwrap_or_else(|| Err("a validation thread failed".into())))
        .collect()
}

pub fn text(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        match &v.result {
            Ok(s) => {
                out += &format!("{}: valid ({} bytes, {} objects, {} scripts)\n", v.file, s.bytes, s.objects, s.scripts)
            }
            Err(report) => {
                out += &format!("{}: INVALID ({} findings)\n", v.file, report.diagnostics.len() + report.omitted);
                for d in &report.diagnostics {
                    out += &format!("  {d}\n");
                }
                if report.omitted > 0 {
                    out += &format!("  ... and {} more findings (raise max_diagnostics to see them)\n", report.omitted);
                }
            }
        }
    }
    out
}

fn diagnostic_json(d: &amber_validator::Diagnostic) -> Json {
    json!({
        "code": d.code.as_str(),
        "family": d.code.family().name(),
        "severity": d.severity.name(),
        "path": d.path.to_string(),
        "message": d.message,
        "rule": d.code.rule(),
    })
}

pub fn json(verdicts: &[Verdict]) -> String {
    let snapshots: Vec<Json> = verdicts
        .iter()
        .map(|v| match &v.result {
            Ok(s) => json!({"file": v.file, "valid": true, "bytes": s.bytes, "objects": s.objects, "scripts": s.scripts, "diagnostics": []}),
            Err(r) => json!({
                "file": v.file,
                "valid": false,
                "diagnostics": r.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
                "omitted": r.omitted,
            }),
        })
        .collect();
    let doc = json!({
        "tool": "amber",
        "version": env!("CARGO_PKG_VERSION"),
        "valid": verdicts.iter().all(|v| v.result.is_ok()),
        "snapshots": snapshots,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
