//! Untrusted-snapshot intake for `amber validate` and `amber inspect`: the limits file and the
//! report writers (text for people, JSON and SARIF for CI gates).

use amber_luau::PermanentRegistry;
use amber_validator::diagnostics::Code;
use amber_validator::{Limits, Report};
use serde_json::{Value as Json, json};
use std::path::Path;

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
    let mut limits = default_limits();
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
            "codecs" => limits.codecs = strings()?.into_iter().collect(),
            "permanents" => {
                let registry = PermanentRegistry::standard();
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

/// The default intake policy: default sizes, the standard base image's permanents, no codecs,
/// and this runtime's identity (a snapshot of another Luau release, flag set or base image is
/// refused by the validator).
pub fn default_limits() -> Limits {
    Limits {
        permanents: Some(PermanentRegistry::standard().allowlist()),
        runtime: Some(amber_luau::runtime_identity()),
        ..Limits::default()
    }
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

/// SARIF 2.1.0, one run, a rule per diagnostic code, a result per finding located at the
/// snapshot file (physical) and the object path (logical).
pub fn sarif(verdicts: &[Verdict]) -> String {
    let rules: Vec<Json> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": c.rule(),
                "shortDescription": {"text": c.rule()},
                "properties": {"family": c.family().name()},
                "helpUri": format!("docs/DIAGNOSTICS.md#{}", c.as_str().to_lowercase()),
            })
        })
        .collect();
    let mut results = Vec::new();
    for v in verdicts {
        let Err(report) = &v.result else { continue };
        for d in &report.diagnostics {
            results.push(json!({
                "ruleId": d.code.as_str(),
                "level": match d.severity { amber_validator::Severity::Error => "error", amber_validator::Severity::Warning => "warning" },
                "message": {"text": format!("{}: {}", d.path, d.message)},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": v.file}},
                    "logicalLocations": [{"fullyQualifiedName": d.path.to_string(), "kind": "object"}],
                }],
            }));
        }
    }
    let doc = json!({
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "amber", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
