//! Snapshots that outlive their base image: host libraries extend an image, a snapshot taken
//! under the smaller image restores into the larger one with the extra globals hidden on every
//! path a script can use, and a snapshot that names a permanent an image lacks is refused.

use amber_luau::*;
use amber_validator::{Limits, encode, validate};

fn add(args: &[Value]) -> Result<Vec<Value>, String> {
    match args {
        [Value::Number(a), Value::Number(b)] => Ok(vec![Value::Number(a + b)]),
        _ => Err("add takes two numbers".into()),
    }
}

fn greet(args: &[Value]) -> Result<Vec<Value>, String> {
    let who = match args.first() {
        Some(Value::String(s)) => String::from_utf8_lossy(s).into_owned(),
        _ => "nobody".into(),
    };
    Ok(vec![Value::String(format!("hello, {who}").into_bytes()), Value::Boolean(true)])
}

fn explode(_: &[Value]) -> Result<Vec<Value>, String> {
    panic!("a host bug")
}

/// Image B: the standard image plus `newlib`.
fn extended() -> Vm {
    Vm::with_options(VmOptions {
        deterministic: true,
        libraries: vec![HostLibrary {
            name: "newlib".into(),
            functions: vec![("add".into(), add as HostFunction), ("greet".into(), greet), ("explode".into(), explode)],
        }],
    })
    .expect("an extended VM")
}

/// Runs a task to its end, collecting output.
fn finish(task: &mut Task) -> (String, Outcome) {
    let mut out = Vec::new();
    loop {
        let o = task.resume(Budget::ticks(7)).unwrap();
        out.extend(task.take_output());
        match o {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            o => return (String::from_utf8_lossy(&out).into_owned(), o),
        }
    }
}

/// Spawns `src` in `vm`, runs it to its first main-function yield and captures it as bytes.
fn capture_at_yield(vm: &Vm, src: &str) -> Vec<u8> {
    let mut task = vm.spawn(&Script::compile(src, "=upgrade").unwrap()).unwrap();
    loop {
        match task.resume(Budget::ticks(5)).unwrap() {
            Outcome::Yielded(_) => break,
            Outcome::Preempted => continue,
            o => panic!("ended before yielding: {o:?}\n{}", String::from_utf8_lossy(&task.take_output())),
        }
    }
    encode(&capture(&task).unwrap())
}

fn limits_of(vm: &Vm) -> Limits {
    Limits { permanents: Some(vm.permanents().allowlist()), runtime: Some(runtime_identity()), ..Limits::default() }
}

fn restore_into(vm: &Vm, bytes: &[u8]) -> Result<Task, String> {
    let verified = validate(bytes, &limits_of(vm), &SourceCatalog::embedded_only()).map_err(|r| r.to_string())?;
    restore(vm, &verified, RestoreOptions::default()).map_err(|e| e.to_string())
}

#[test]
fn host_libraries_are_globals_of_the_image() {
    let vm = extended();
    let src = r#"
        print(newlib.add(2, 3), newlib.greet("amber"))
        print(pcall(newlib.add, "x"))
        print(pcall(newlib.explode))
        print(pcall(newlib.add, {}))
        print(type(newlib), type(newlib.add), table.isfrozen(newlib))
    "#;
    let (out, end) = finish(&mut vm.spawn(&Script::compile(src, "=host").unwrap()).unwrap());
    assert!(matches!(end, Outcome::Finished(_)), "{end:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "5\thello, amber\ttrue");
    assert_eq!(lines[1], "false\tadd takes two numbers");
    assert_eq!(lines[2], "false\tthe host function panicked");
    assert!(lines[3].starts_with("false\t") && lines[3].contains("host functions take"), "{}", lines[3]);
    assert_eq!(lines[4], "table\tfunction\ttrue");
    assert!(vm.permanents().names.iter().any(|(n, _)| n == "newlib.add"));
    // The standard image does not have it.
    assert!(!Vm::new().unwrap().permanents().names.iter().any(|(n, _)| n.starts_with("newlib")));
}

#[test]
fn host_library_names_must_not_replace_globals() {
    for name in ["string", "print", "not an identifier", ""] {
        let err = Vm::with_options(VmOptions {
            deterministic: false,
            libraries: vec![HostLibrary { name: name.into(), functions: vec![] }],
        })
        .err();
        assert!(matches!(err, Some(VmError::HostLibrary(_))), "{name:?}: {err:?}");
    }
}

/// What the task reports about `newlib` and `bit32` after its yield, through every path.
const PROBE: &str = r#"
    local before = newlib
    coroutine.yield()
    local listed = false
    for k in pairs(_G) do if k == "newlib" then listed = true end end
    print(before, newlib, _G.newlib, rawget(_G, "newlib"), listed, getfenv == nil)
    print(type(bit32), type(_G.bit32), type(rawget(_G, "bit32")))
    local ok = pcall(function() return newlib.add(1, 2) end)
    print(ok)
"#;

#[test]
fn a_snapshot_from_a_smaller_image_sees_none_of_the_new_globals() {
    let a = Vm::deterministic().unwrap();
    let bytes = capture_at_yield(&a, PROBE);

    // Restored into the same image: as before.
    let (out_a, _) = finish(&mut restore_into(&a, &bytes).unwrap());
    // Restored into the extended image: `newlib` is nil on every path.
    let b = extended();
    let (out_b, end) = finish(&mut restore_into(&b, &bytes).unwrap());
    assert!(matches!(end, Outcome::Finished(_)), "{end:?}");
    assert_eq!(out_b, out_a);
    assert_eq!(out_b.lines().next(), Some("nil\tnil\tnil\tnil\tfalse\ttrue"));
    assert_eq!(out_b.lines().nth(1), Some("table\ttable\ttable"));
    assert_eq!(out_b.lines().nth(2), Some("false"));

    // A fresh task in the extended image sees it.
    let (fresh, _) = finish(&mut b.spawn(&Script::compile(PROBE, "=fresh").unwrap()).unwrap());
    assert!(fresh.lines().next().is_some_and(|l| l.starts_with("table: ") && l.ends_with("\ttrue\ttrue")), "{fresh}");
}

#[test]
fn views_and_their_loads_are_made_once_per_layout() {
    let a = Vm::deterministic().unwrap();
    let bytes = capture_at_yield(&a, PROBE);
    let b = extended();
    let mut outputs = Vec::new();
    for _ in 0..3 {
        outputs.push(finish(&mut restore_into(&b, &bytes).unwrap()).0);
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(b.globals_views(), 1, "one view for one name set");
}

#[test]
fn a_task_restored_into_a_view_captures_as_it_was_taken() {
    let a = Vm::deterministic().unwrap();
    let src = r#"
        local n = 0
        for i = 1, 3 do n += i coroutine.yield(n) end
        print(n, newlib, rawget(_G, "newlib"))
    "#;
    let first = capture_at_yield(&a, src);
    let b = extended();
    let mut task = restore_into(&b, &first).unwrap();
    // One more yield inside the extended image, then capture again.
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let second = encode(&capture(&task).unwrap());
    let s1 = validate(&first, &limits_of(&a), &SourceCatalog::embedded_only()).unwrap();
    let s2 = validate(&second, &limits_of(&b), &SourceCatalog::embedded_only()).unwrap();
    assert_eq!(s1.view().roots.globals_layout, s2.view().roots.globals_layout, "the same layout, no newlib");
    // It goes back to the smaller image as well as to the larger one.
    let (out, _) = finish(&mut restore_into(&a, &second).unwrap());
    assert_eq!(out, "6\tnil\tnil\n");
    let (out, _) = finish(&mut restore_into(&b, &second).unwrap());
    assert_eq!(out, "6\tnil\tnil\n");
}

#[test]
fn a_snapshot_naming_a_permanent_the_image_lacks_is_refused() {
    let b = extended();
    let bytes = capture_at_yield(&b, "local f = newlib.add\ncoroutine.yield()\nprint(f(1, 2))");
    let a = Vm::deterministic().unwrap();
    let err = restore_into(&a, &bytes).err().expect("refused");
    assert!(err.contains("X001") && err.contains("newlib.add"), "{err}");
    // Restore itself refuses it too, whatever the validator was told.
    let verified = validate(&bytes, &limits_of(&b), &SourceCatalog::embedded_only()).unwrap();
    let err = restore(&a, &verified, RestoreOptions::default()).err().expect("refused");
    assert_eq!(err, RestoreError::UnknownPermanent("newlib.add".into()));
    // Into an image that has it, it runs.
    let (out, _) = finish(&mut restore_into(&b, &bytes).unwrap());
    assert_eq!(out, "3\n");
}

#[test]
fn a_name_missing_from_the_list_is_hidden_even_in_the_same_image() {
    // The measurement of the issue: drop `bit32` from a capture's global names.
    let a = Vm::deterministic().unwrap();
    let bytes = capture_at_yield(&a, "coroutine.yield()\nprint(type(bit32), type(_G.bit32), type(string))");
    let mut model = validate(&bytes, &limits_of(&a), &SourceCatalog::embedded_only()).unwrap().to_model();
    for n in &mut model.roots.globals_layout {
        if n.as_deref() == Some(b"bit32") {
            *n = None;
        }
    }
    let (out, _) = finish(&mut restore_into(&a, &encode(&model)).unwrap());
    assert_eq!(out, "nil\tnil\ttable\n");
}

#[test]
fn a_loop_over_the_globals_goes_on_where_it_was_in_a_larger_image() {
    // Pre-empted at every point of a `pairs(_G)` loop, restored into the extended image: the
    // loop visits the remaining names exactly as it would have in the original image.
    let src = r#"
        local seen = {}
        for k in pairs(_G) do seen[#seen + 1] = k end
        print(table.concat(seen, ","))
    "#;
    let a = Vm::deterministic().unwrap();
    let (want, _) = finish(&mut a.spawn(&Script::compile(src, "=loop").unwrap()).unwrap());
    let b = extended();
    let mut points = 0;
    for k in 1.. {
        let mut task = a.spawn(&Script::compile(src, "=loop").unwrap()).unwrap();
        let mut seen = 0;
        let mut ended = false;
        while seen < k {
            match task.resume(Budget::ticks(1)).unwrap() {
                Outcome::Preempted => seen += 1,
                _ => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            break;
        }
        let before = String::from_utf8_lossy(&task.take_output()).into_owned();
        let bytes = encode(&capture(&task).unwrap());
        let (got, end) = finish(&mut restore_into(&b, &bytes).unwrap());
        assert!(matches!(end, Outcome::Finished(_)), "{end:?}");
        assert_eq!(before + &got, want, "persisted at point {k}");
        points += 1;
    }
    assert!(points > 30, "the loop has points to persist at ({points})");
}
