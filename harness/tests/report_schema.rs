//! `amber validate --format json` against its published schema (docs/validate-report.schema.json):
//! the real output for every committed valid capture and hostile mutant, and for garbage, must
//! validate, and say the right thing about each file.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/validate-report.schema.json")).expect("the schema");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn validate_json(args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_amber"))
        .arg("validate")
        .args(args)
        .args(["--format", "json"])
        .current_dir(root())
        .output()
        .expect("amber runs");
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), doc)
}

fn check(validator: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> =
        validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).take(5).collect();
    assert!(errors.is_empty(), "the report breaks its schema: {errors:?}");
}

#[test]
fn the_schema_refuses_what_the_report_must_not_be() {
    let validator = schema();
    let ok = serde_json::json!({"tool": "amber", "version": "0.1.0", "valid": true, "snapshots": []});
    assert!(validator.is_valid(&ok));
    for broken in [
        serde_json::json!({"tool": "amber", "version": "0.1.0", "snapshots": []}),
        serde_json::json!({"tool": "amber", "version": "0.1.0", "valid": false, "snapshots": [{"file": "a", "valid": false, "diagnostics": [], "omitted": 0}]}),
        serde_json::json!({"tool": "amber", "version": "0.1.0", "valid": false, "snapshots": [{"file": "a", "valid": false, "omitted": 0,
            "diagnostics": [{"code": "Q999", "family": "format", "severity": "error", "path": "snapshot", "message": "m", "rule": "r"}]}]}),
    ] {
        assert!(!validator.is_valid(&broken), "{broken}");
    }
}

#[test]
fn every_committed_snapshot_reports_by_the_schema() {
    let validator = schema();
    for (dir, valid) in [("corpus/snapshots", true), ("corpus/hostile", false)] {
        let (code, doc) = validate_json(&[dir]);
        check(&validator, &doc);
        let files = std::fs::read_dir(root().join(dir))
            .expect("corpus dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "snap")))
            .count();
        let snapshots = doc["snapshots"].as_array().expect("snapshots");
        assert_eq!(snapshots.len(), files, "{dir}: one entry per file");
        assert!(snapshots.iter().all(|s| s["valid"] == valid), "{dir}: every snapshot valid = {valid}");
        assert_eq!(doc["valid"], valid);
        assert_eq!(code, Some(if valid { 0 } else { 1 }));
    }
}

#[test]
fn garbage_and_truncation_report_by_the_schema() {
    let validator = schema();
    let dir = std::env::temp_dir().join(format!("amber-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snap = std::fs::read_dir(root().join("corpus/snapshots"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .expect("a capture");
    let bytes = std::fs::read(&snap).unwrap();
    let files = [
        ("garbage.snap", b"not a snapshot at all".to_vec()),
        ("empty.snap", Vec::new()),
        ("truncated.snap", bytes[..bytes.len() / 2].to_vec()),
        ("trailing.snap", [&bytes[..], b"x"].concat()),
    ];
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let (code, doc) = validate_json(&[dir.to_str().unwrap()]);
    check(&validator, &doc);
    assert_eq!(code, Some(1));
    let snapshots = doc["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), files.len());
    for s in snapshots {
        let d = &s["diagnostics"][0];
        assert_eq!(d["family"], "format", "{s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
