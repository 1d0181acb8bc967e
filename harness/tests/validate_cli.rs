//! `amber validate` and `amber inspect` on snapshots built from the model (the model is the
//! format's source of truth).

use amber_luau::{PermanentRegistry, Script};
use amber_validator::encode;
use amber_validator::snapshot::*;
use std::path::PathBuf;
use std::process::{Command, Output};

const SOURCE: &str = "local greeting = 'hello'\nprint(greeting)\nreturn greeting\n";

fn amber(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber")).args(args).output().expect("amber runs")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("amber-validate-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A not-yet-started task of SOURCE: main thread holding its closure, proxy globals whose
/// metatable's __index is the base globals.
fn model(embed: bool) -> Snapshot {
    let script = Script::compile(SOURCE, "=greeting").unwrap();
    let main_proto = script.module().main;
    let registry = PermanentRegistry::standard().unwrap();
    Snapshot {
        header: Header {
            luau_version: "0.745".into(),
            compiler: CompilerSettings::default(),
            enabled_flags: vec![],
            permanents_digest: registry.digest(),
        },
        scripts: vec![ScriptEntry {
            hash: script.hash(),
            chunk_name: "=greeting".into(),
            source: embed.then(|| SOURCE.as_bytes().to_vec()),
            signatures: vec![ProtoSignature {
                proto: main_proto,
                signature: script.yield_map(main_proto).expect("the main proto's map").signature.0,
            }],
        }],
        permanents: vec!["@globals".into()],
        objects: vec![
            Object::Thread(Box::new(Thread {
                status: ThreadStatus::NotStarted,
                stack: vec![Value::Nil, Value::Object(3)],
                frames: vec![],
                open_upvalues: vec![],
                globals: Value::Object(1),
                namecall: None,
                error: None,
            })),
            Object::Table(Box::new(Table { metatable: Some(Value::Object(2)), safeenv: true, ..Table::default() })),
            Object::Table(Box::new(Table {
                hash: vec![Some((Value::Object(4), Value::Permanent(0)))],
                readonly: true,
                ..Table::default()
            })),
            Object::LuaClosure(LuaClosure {
                script: 0,
                proto: main_proto,
                env: EnvRef::Object(1),
                upvalues: vec![].into(),
            }),
            Object::String(b"__index".into()),
        ],
        roots: Roots { main_thread: 0, random_state: 42, globals_layout: vec![] },
    }
}

fn write(name: &str, bytes: &[u8]) -> String {
    let p = dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn a_valid_snapshot_passes_in_every_format() {
    let snap = write("valid.snap", &encode(&model(true)));
    let out = amber(&["validate", &snap]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("valid (") && text.contains("5 objects"), "{text}");
    assert!(!text.contains("not yet checked"), "every family is checked: {text}");

    let out = amber(&["validate", &snap, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["snapshots"][0]["objects"], 5);

    let out = amber(&["validate", &snap, "--format", "sarif"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    assert_eq!(doc["runs"][0]["results"].as_array().unwrap().len(), 0);
}

#[test]
fn an_invalid_snapshot_fails_with_codes_paths_and_rules() {
    let mut m = model(true);
    if let Object::Table(t) = &mut m.objects[1] {
        t.metatable = Some(Value::Object(4)); // a string as metatable
    }
    m.permanents.push("os.execute".into()); // not a permanent of the base image
    let good = write("good.snap", &encode(&model(true)));
    let bad = write("bad.snap", &encode(&m));
    let out = amber(&["validate", &good, &bad]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("good.snap: valid"), "{text}");
    assert!(text.contains("bad.snap: INVALID"), "{text}");
    assert!(text.contains("R003") && text.contains("table#1 > metatable"), "{text}");
    assert!(text.contains("X001") && text.contains("os.execute"), "{text}");

    let out = amber(&["validate", &bad, "--format", "sarif"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let r003 = results.iter().find(|r| r["ruleId"] == "R003").expect("an R003 result");
    let location = &r003["locations"][0]["physicalLocation"];
    // An absolute path becomes a file URI; the region is the table's own encoded bytes.
    assert_eq!(location["artifactLocation"]["uri"].as_str().unwrap(), format!("file://{bad}"));
    let (_, spans) = amber_validator::snapshot::format::encode_with_spans(&m);
    assert_eq!(location["region"]["byteOffset"].as_u64(), Some(spans.objects[1].start as u64));
    assert_eq!(location["region"]["byteLength"].as_u64(), Some(spans.objects[1].len() as u64));
    assert_eq!(r003["locations"][0]["logicalLocations"][0]["fullyQualifiedName"], "table#1 > metatable");
    let rules = doc["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "R003" && r["name"] == "WrongType"));
    let out = amber(&["validate", &bad, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["snapshots"][0]["diagnostics"][0]["path"], "table#1 > metatable");

    // Truncated bytes: a format diagnostic with the byte offset.
    let bytes = encode(&model(true));
    let cut = write("cut.snap", &bytes[..bytes.len() / 2]);
    let out = amber(&["validate", &cut]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("F003"), "{text}");
    // Its SARIF region is the byte where decoding stopped, as the message says.
    let out = amber(&["validate", &cut, "--format", "sarif"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let region = &doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
    let offset = region["byteOffset"].as_u64().expect("a byte offset");
    assert!(text.contains(&format!("byte {offset}")), "{offset} in {text}");
}

#[test]
fn sources_come_from_the_snapshot_or_a_source_directory() {
    let snap = write("noembed.snap", &encode(&model(false)));
    let out = amber(&["validate", &snap]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("S001"));

    let sources = dir().join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::write(sources.join("any-name.luau"), SOURCE).unwrap();
    let out = amber(&["validate", &snap, "--source-dir", sources.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // A source whose hash does not match is not used.
    let other = dir().join("other-sources");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("greeting.luau"), "print('tampered')").unwrap();
    let out = amber(&["validate", &snap, "--source-dir", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn limits_files_tighten_the_gate_and_typos_are_errors() {
    let snap = write("limits.snap", &encode(&model(true)));
    let tight = write("tight.toml", b"max_objects = 2\n");
    let out = amber(&["validate", &snap, "--limits", &tight]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("L002"));

    let typo = write("typo.toml", b"max_object = 2\n");
    let out = amber(&["validate", &snap, "--limits", &typo]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `max_object`"));

    let narrow = write("narrow.toml", b"permanents = [\"print\"]\n");
    let out = amber(&["validate", &snap, "--limits", &narrow]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("X001"));

    assert_eq!(amber(&["validate", "/nonexistent.snap"]).status.code(), Some(2));
    assert_eq!(amber(&["validate"]).status.code(), Some(2));
    assert_eq!(amber(&["validate", &snap, "--format", "xml"]).status.code(), Some(2));
}

#[test]
fn inspect_summarises_and_draws_the_graph() {
    let snap = write("inspect.snap", &encode(&model(true)));
    let out = amber(&["inspect", &snap]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.contains("objects: 5"), "{text}");
    assert!(text.contains("thread#0 (main): not started"), "{text}");
    assert!(text.contains("=greeting") && text.contains("source embedded"), "{text}");
    let out = amber(&["inspect", &snap, "--dot"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("digraph {"), "{text}");
    assert!(text.contains("thread#0 (main)") && text.contains("->"), "{text}");
    let garbage = write("garbage.snap", b"not a snapshot");
    assert_eq!(amber(&["inspect", &garbage]).status.code(), Some(1));
}
