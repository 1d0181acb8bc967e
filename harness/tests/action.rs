//! The GitHub Action's gate step (scripts/action-gate.sh, run by action.yml) with the real
//! `amber`: what it writes to the step outputs and the SARIF file, and how it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

struct Gate {
    dir: PathBuf,
}

impl Gate {
    fn new(name: &str) -> Gate {
        let dir = std::env::temp_dir().join(format!("amber-action-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Gate { dir }
    }

    fn run(&self, snapshots: &str) -> (Output, String, Option<serde_json::Value>) {
        let outputs = self.dir.join("outputs");
        let sarif = self.dir.join("amber.sarif");
        let _ = std::fs::remove_file(&outputs);
        let _ = std::fs::remove_file(&sarif);
        let out = Command::new("bash")
            .arg(root().join("scripts/action-gate.sh"))
            .env("AMBER", env!("CARGO_BIN_EXE_amber"))
            .env("INPUT_SNAPSHOTS", snapshots)
            .env("INPUT_SOURCE_DIR", "")
            .env("INPUT_LIMITS", "")
            .env("INPUT_SARIF_FILE", &sarif)
            .env("GITHUB_OUTPUT", &outputs)
            .env("AMBER_DOCS_URL", "https://example.org/amber/blob/v1")
            .current_dir(root())
            .output()
            .expect("bash runs");
        let outputs = std::fs::read_to_string(&outputs).unwrap_or_default();
        let sarif = std::fs::read(&sarif).ok().and_then(|b| serde_json::from_slice(&b).ok());
        (out, outputs, sarif)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn results(sarif: &serde_json::Value) -> usize {
    sarif["runs"][0]["results"].as_array().map_or(0, Vec::len)
}

#[test]
fn valid_snapshots_pass_the_gate() {
    let gate = Gate::new("valid");
    let (out, outputs, sarif) = gate.run("corpus/snapshots/bit32_ops.at1.snap\n corpus/snapshots/loops.at1.snap");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(outputs.trim(), "valid=true");
    let sarif = sarif.expect("a SARIF report");
    assert_eq!(results(&sarif), 0);
    let help = sarif["runs"][0]["tool"]["driver"]["rules"][0]["helpUri"].as_str().unwrap_or_default();
    assert!(help.starts_with("https://example.org/amber/blob/v1/docs/DIAGNOSTICS.md#"), "{help}");
}

#[test]
fn refused_snapshots_are_reported_not_hidden() {
    let gate = Gate::new("refused");
    // A quoted pattern reaches amber unexpanded; amber expands it.
    let (out, outputs, sarif) = gate.run("corpus/snapshots/loops.at1.snap corpus/hostile/loops.*.snap");
    assert_eq!(out.status.code(), Some(0), "the step leaves failing to the action, after the upload");
    assert_eq!(outputs.trim(), "valid=false");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("INVALID"), "{stdout}");
    let sarif = sarif.expect("a SARIF report");
    let hostile = std::fs::read_dir(root().join("corpus/hostile"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("loops."))
        .count();
    assert!(hostile > 0 && results(&sarif) >= hostile, "{} results for {hostile} mutants", results(&sarif));
}

#[test]
fn nothing_to_validate_stops_the_gate() {
    let gate = Gate::new("nothing");
    for snapshots in ["", "corpus/hostile/no-such-*.snap", "no/such/file.snap"] {
        let (out, outputs, _) = gate.run(snapshots);
        assert_eq!(out.status.code(), Some(2), "{snapshots:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert!(outputs.is_empty(), "{snapshots:?}");
    }
}

#[test]
fn the_action_runs_this_gate_with_its_inputs() {
    let action = std::fs::read_to_string(root().join("action.yml")).expect("action.yml");
    assert!(action.contains("scripts/action-gate.sh"));
    for input in ["snapshots", "source-dir", "limits", "sarif-file"] {
        assert!(action.contains(&format!("  {input}:\n")), "input {input}");
        let var = format!("INPUT_{}", input.to_uppercase().replace('-', "_"));
        assert!(action.contains(&format!("{var}: ${{{{ inputs.{input} }}}}")), "{var}");
    }
    assert!(action.contains("github/codeql-action/upload-sarif"));
}
