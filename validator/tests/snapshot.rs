//! The snapshot format and the validator: valid models round-trip canonically, hostile bytes
//! end in a diagnostic, and every check rejects the model made to break it, with its code.

use amber_validator::testkit as common;

use amber_validator::diagnostics::{Code, Report};
use amber_validator::snapshot::*;
use amber_validator::{CallFrameKind, Limits, decode, encode, validate, validate_model};
use common::{ObjectSpec, TestCatalog, ValueSpec, build, limits, permanent, sample};
use proptest::prelude::*;

/// Serves the test script's source with bytecode the reader refuses.
struct BrokenCompiler;
impl amber_validator::ScriptCatalog for BrokenCompiler {
    fn lookup(
        &self,
        _: &ScriptHash,
        _: &str,
        _: Option<&[u8]>,
        _: CompilerSettings,
    ) -> Result<amber_validator::CatalogEntry, String> {
        Ok(amber_validator::CatalogEntry { source: common::SOURCE.to_vec(), bytecode: vec![3, 0, 1, 2, 0, 0, 0] })
    }
}

#[test]
fn refused_bytecode_is_reported() {
    let r = validate_model(sample(), &limits(), &BrokenCompiler).expect_err("refused");
    assert!(r.codes().contains(&Code::BytecodeRefused), "{r}");
    println!("{}", r.diagnostics[0]);
}

#[test]
fn the_sample_is_valid_and_round_trips() {
    let s = sample();
    let bytes = encode(&s);
    let verified = validate(&bytes, &limits(), &TestCatalog).unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(verified.to_model(), s);
    assert_eq!(verified.scripts().len(), 1);
    assert_eq!(encode(&verified.to_model()), bytes);
}

fn value_spec() -> impl Strategy<Value = ValueSpec> {
    prop_oneof![
        Just(ValueSpec::Nil),
        any::<bool>().prop_map(ValueSpec::Boolean),
        any::<f64>().prop_map(ValueSpec::Number),
        any::<[f32; 3]>().prop_map(ValueSpec::Vector),
        any::<usize>().prop_map(ValueSpec::Ref),
        any::<usize>().prop_map(ValueSpec::Permanent),
    ]
}

fn object_spec() -> impl Strategy<Value = ObjectSpec> {
    let values = || proptest::collection::vec(value_spec(), 0..6);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(ObjectSpec::String),
        (
            // Up to past the length from which the view records where the hash part starts.
            proptest::collection::vec(value_spec(), 0..24),
            proptest::collection::vec((value_spec(), value_spec()), 0..8),
            proptest::option::of(any::<usize>()),
            any::<bool>()
        )
            .prop_map(|(array, hash, metatable, readonly)| ObjectSpec::Table {
                array,
                hash,
                metatable,
                readonly
            }),
        proptest::collection::vec(value_spec(), 0..4).prop_map(|upvalues| ObjectSpec::Closure { upvalues }),
        Just(ObjectSpec::WrappedCoroutine),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(ObjectSpec::Buffer),
        proptest::option::of(any::<usize>()).prop_map(|metatable| ObjectSpec::Proxy { metatable }),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|payload| ObjectSpec::Codec { payload }),
        values().prop_map(|stack| ObjectSpec::Coroutine { stack }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)))]

    #[test]
    fn generated_models_are_valid_and_canonical(specs in proptest::collection::vec(object_spec(), 0..24)) {
        let model = build(&specs);
        let bytes = encode(&model);
        prop_assert_eq!(encode(&model), bytes.clone(), "encoding is deterministic");
        let verified = validate(&bytes, &limits(), &TestCatalog).map_err(|r| TestCaseError::fail(r.to_string()))?;
        prop_assert_eq!(verified.to_model(), model.clone(), "decode(encode(m)) == m");
        prop_assert_eq!(encode(&verified.to_model()), bytes, "encode(decode(b)) == b");
    }

    /// The view reads every object as the model holds it: a table's parts whichever is read
    /// first (reading the array through records where the hash part starts), node maps too, and
    /// the references it skims. With `tiny` small objects after them, the index keeps only
    /// anchors (objects average under 8 bytes) and finds the rest by skimming from them.
    #[test]
    fn the_view_reads_objects_as_the_model_holds_them(
        specs in proptest::collection::vec(object_spec(), 0..24),
        tiny in prop_oneof![Just(0usize), 0..400usize],
    ) {
        let mut model = build(&specs);
        model.objects.extend((0..tiny).map(|k| match k % 3 {
            0 => Object::Buffer(vec![]),
            1 => Object::Upvalue(Upvalue::Closed(Value::Nil)),
            _ => Object::String(format!("{k}").as_bytes().into()),
        }));
        // A node map (a rotation of the hash part's positions) on every table with two or more.
        for o in &mut model.objects {
            if let Object::Table(t) = o && t.hash.len() >= 2 {
                let n = t.hash.len() as u32;
                t.node_of = Some((0..n).map(|p| if t.hash[p as usize].is_some() { (p + 1) % n } else { u32::MAX }).collect());
            }
        }
        let bytes = encode(&model);
        let view = SnapshotView::decode(&bytes, &limits()).map_err(|d| TestCaseError::fail(d.to_string()))?;
        prop_assert_eq!(view.object_count(), model.objects.len());
        let in_order: Vec<_> = view.objects().map(|(i, o)| (i, o.kind())).collect();
        let kinds: Vec<_> = view.kinds().collect();
        prop_assert_eq!(&in_order, &kinds);
        prop_assert_eq!(kinds, model.objects.iter().enumerate().map(|(i, o)| (i as u32, o.kind())).collect::<Vec<_>>());
        prop_assert!(view.object(model.objects.len() as u32).is_none());
        for (i, o) in model.objects.iter().enumerate() {
            prop_assert_eq!(view.kind(i as u32), Some(o.kind()));
            let got = view.object(i as u32).expect("every object decodes");
            prop_assert_eq!(got.kind(), o.kind());
            let (mut want, mut refs) = (Vec::new(), Vec::new());
            o.for_each_reference(|r| want.push(r));
            got.for_each_reference(|r| refs.push(r));
            prop_assert_eq!(refs, want, "the references, in order");
            match (o, got) {
                (Object::Table(t), ObjectRef::Table(r)) => {
                    let map: Option<Vec<u32>> = r.node_of().map(Iterator::collect);
                    prop_assert_eq!(&map, &t.node_of);
                    prop_assert_eq!(r.hash().collect::<Vec<_>>(), t.hash.clone(), "hash part read first");
                    prop_assert_eq!(r.array().collect::<Vec<_>>(), t.array.clone());
                    let again = match view.object(i as u32) { Some(ObjectRef::Table(r)) => r, _ => unreachable!() };
                    prop_assert_eq!(again.array().collect::<Vec<_>>(), t.array.clone());
                    prop_assert_eq!(again.hash_len(), t.hash.len(), "array read first");
                    prop_assert_eq!(again.hash().collect::<Vec<_>>(), t.hash.clone());
                }
                (Object::LuaClosure(c), ObjectRef::LuaClosure(g)) => {
                    prop_assert_eq!(&g, c);
                    prop_assert_eq!(view.function(i as u32), Some(Function::Lua { script: c.script, proto: c.proto }));
                }
                (Object::String(b), ObjectRef::String(g)) => prop_assert_eq!(g, b.as_slice()),
                (Object::Thread(t), ObjectRef::Thread(g)) => prop_assert_eq!(&*g, &**t),
                (Object::CClosure(c), ObjectRef::CClosure(g)) => {
                    prop_assert_eq!(&g, c);
                    prop_assert_eq!(view.function(i as u32), Some(Function::C { function: c.function }));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = validate(&bytes, &limits(), &TestCatalog);
    }

    #[test]
    fn whatever_decodes_reencodes_to_the_same_bytes(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = encode(&sample());
        for (at, v) in edits {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        if let Ok(model) = decode(&bytes, &Limits::default()) {
            prop_assert_eq!(encode(&model), bytes);
        }
    }

    /// Generated snapshots (every object kind, long arrays included) with a few bytes changed:
    /// validation refuses for the encoding exactly what decoding refuses, saying the same.
    #[test]
    fn changed_bytes_are_refused_as_decoding_refuses_them(
        specs in proptest::collection::vec(object_spec(), 0..24),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&build(&specs));
        for (at, v) in edits {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        refused_as_decoding_refuses(&bytes, &limits(), "edited");
    }
}

#[test]
fn every_truncation_and_byte_change_ends_in_ok_or_a_diagnostic() {
    let bytes = encode(&sample());
    for len in 0..bytes.len() {
        let err = validate(&bytes[..len], &limits(), &TestCatalog).expect_err("a truncated snapshot is refused");
        assert!(!err.diagnostics.is_empty());
        refused_as_decoding_refuses(&bytes[..len], &limits(), &format!("truncated to {len}"));
    }
    for i in 0..bytes.len() {
        for v in 0..=255u8 {
            if v == bytes[i] {
                continue;
            }
            let mut m = bytes.clone();
            m[i] = v;
            if let Ok(model) = decode(&m, &Limits::default()) {
                assert_eq!(encode(&model), m, "byte {i} = {v}: decoded but not canonical");
            }
            refused_as_decoding_refuses(&m, &limits(), &format!("byte {i} = {v}"));
        }
    }
    // Limits the validator's pass applies (the locating pass does not look at them).
    for tight in [
        Limits { max_string_bytes: 3, ..limits() },
        Limits { max_table_entries: 2, ..limits() },
        Limits { max_stack_slots: 2, ..limits() },
        Limits { max_upvalues: 1, ..limits() },
        Limits { max_frames: 0, ..limits() },
    ] {
        refused_as_decoding_refuses(&bytes, &tight, "under tight limits");
    }
}

/// Validation refuses `bytes` for their encoding exactly when decoding them in full does, with
/// decoding's one finding (objects are located by a quicker reader and decoded strictly one by
/// one in the validator's pass; neither may change what is refused or what is said).
fn refused_as_decoding_refuses(bytes: &[u8], limits: &Limits, what: &str) {
    let validated = validate(bytes, limits, &TestCatalog);
    match decode(bytes, limits) {
        Err(d) => match validated {
            Err(report) => assert_eq!(report.diagnostics, vec![*d], "{what}: the decoding finding, alone"),
            Ok(_) => panic!("{what}: accepted, but decoding refuses it: {d:?}"),
        },
        Ok(_) => {
            if let Err(report) = validated {
                let from_bytes = [Code::Truncated, Code::NonCanonical, Code::UnknownTag, Code::BadVarint];
                assert!(
                    !report.diagnostics.iter().any(|d| from_bytes.contains(&d.code)),
                    "{what}: decodes, but was refused for its encoding: {report}"
                );
            }
        }
    }
}

/// One hand-made invalid snapshot per check; each must be refused with its code.
#[test]
fn each_check_rejects_its_invalid_model() {
    type Edit = fn(&mut Snapshot);
    // Object layout of the sample: 0 main thread, 1 globals, 2 main function, 3 string "key#0",
    // 4 table, 5 closure, 6-7 its upvalues, 8 wrapped coroutine, 9 its thread, 10 buffer,
    // 11 proxy, 12 codec userdata, 13 yielded coroutine.
    let cases: Vec<(&str, Edit, Code)> = vec![
        ("object reference out of range", |s| set_table_array(s, 0, Value::Object(999)), Code::ObjectOutOfRange),
        ("permanent out of range", |s| set_table_array(s, 0, Value::Permanent(99)), Code::PermanentOutOfRange),
        ("metatable is a string", |s| table(s, 4).metatable = Some(Value::Object(3)), Code::WrongType),
        (
            "metatable is a function permanent",
            |s| table(s, 4).metatable = Some(Value::Permanent(permanent("print"))),
            Code::WrongType,
        ),
        ("an upvalue object used as a value", |s| set_table_array(s, 0, Value::Object(6)), Code::WrongType),
        (
            "a C-function identity used as a value",
            |s| set_table_array(s, 0, Value::Permanent(permanent("coroutine.wrap#resume"))),
            Code::WrongType,
        ),
        ("closure upvalue slot holds a table", |s| closure(s).upvalues[0] = 4, Code::WrongType),
        ("closure names a missing script", |s| closure(s).script = 4, Code::ScriptOutOfRange),
        (
            "iterator position in a table",
            |s| set_table_array(s, 0, Value::IterPosition(1)),
            Code::MisplacedIterPosition,
        ),
        (
            "generic-for position where no loop keeps one",
            |s| coroutine(s).stack.push(Value::IterPosition(1)),
            Code::MisplacedPosition,
        ),
        ("insert hint past the hash part", |s| table(s, 4).insert_hint = 99, Code::BadTableShape),
        (
            "node map naming a node twice",
            |s| {
                let map: Vec<u32> = table(s, 4).hash.iter().map(|e| if e.is_some() { 0 } else { u32::MAX }).collect();
                table(s, 4).node_of = Some(map);
            },
            Code::BadTableShape,
        ),
        ("hash part of 3 nodes", |s| table(s, 4).hash.push(None), Code::BadTableShape),
        ("nil key", |s| table(s, 4).hash[1] = Some((Value::Nil, Value::Nil)), Code::BadTableShape),
        (
            "duplicate key",
            |s| {
                let t = table(s, 4);
                let first = t.hash.iter().flatten().next().cloned();
                let hole = t.hash.iter().position(Option::is_none).expect("a hole");
                t.hash[hole] = first;
            },
            Code::BadTableShape,
        ),
        ("duplicate permanent name", |s| s.permanents[5] = "string".into(), Code::DuplicatePermanent),
        (
            "a C closure no library makes at run time",
            |s| c_closure(s).function = permanent("print"),
            Code::CClosureUpvalues,
        ),
        ("a wrapped coroutine without its thread", |s| c_closure(s).upvalues[0] = Value::Nil, Code::CClosureUpvalues),
        ("a wrapped coroutine with two upvalues", |s| c_closure(s).upvalues.push(Value::Nil), Code::CClosureUpvalues),
        (
            "open upvalue slot past the stack",
            |s| {
                s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 500 });
                main(s).open_upvalues.push(6);
            },
            Code::BadUpvalueSlot,
        ),
        (
            "open upvalue into a table",
            |s| s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 4, slot: 0 }),
            Code::BadUpvalueSlot,
        ),
        (
            "open upvalue on a thread with no frames",
            |s| {
                s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 1 });
                main(s).open_upvalues.push(6);
            },
            Code::OpenUpvalueRegister,
        ),
        ("root is not a thread", |s| s.roots.main_thread = 4, Code::BadRoots),
        (
            "errored thread without error value",
            |s| {
                let t = coroutine(s);
                t.status = ThreadStatus::Errored;
                t.stack.clear();
                t.frames.clear();
            },
            Code::BadThreadShape,
        ),
        (
            "errored thread with a stack",
            |s| {
                let t = coroutine(s);
                t.status = ThreadStatus::Errored;
                t.error = Some(Value::Nil);
            },
            Code::StatusFrames,
        ),
        ("dead thread with a frame", |s| thread_at(s, 9).frames.push(Frame::C), Code::StatusFrames),
        ("dead thread with values", |s| thread_at(s, 9).stack.push(Value::Nil), Code::StatusFrames),
        ("not-started thread without its function", |s| main(s).stack[1] = Value::Number(1.0), Code::StatusFrames),
        ("yielded thread without frames", |s| coroutine(s).frames.clear(), Code::StatusFrames),
        ("slot 0 of a suspended thread is not nil", |s| coroutine(s).stack[0] = Value::Number(1.0), Code::StatusFrames),
        (
            "yielded in something other than coroutine.yield",
            |s| coroutine(s).stack[1] = Value::Permanent(permanent("print")),
            Code::CFrameRole,
        ),
        (
            "a Luau frame record over a C function",
            |s| coroutine(s).frames[0] = Frame::Lua { yield_point: 0, varargs: 0 },
            Code::FrameFunction,
        ),
        ("a frame over a number", |s| coroutine(s).stack[1] = Value::Number(3.0), Code::FrameFunction),
        (
            "two string objects with the same bytes",
            |s| s.objects[10] = Object::String(b"key#0".into()),
            Code::DuplicateString,
        ),
        (
            "orphan object",
            |s| {
                table(s, 1).array.pop();
            },
            Code::OrphanObject,
        ),
        (
            "open upvalue listed by another thread",
            |s| {
                s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 0 });
                coroutine(s).open_upvalues.push(6);
            },
            Code::UpvalueOwnership,
        ),
        (
            "open upvalue listed by nobody",
            |s| s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 0 }),
            Code::UpvalueOwnership,
        ),
        (
            "two open upvalues on one slot",
            |s| {
                s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 1 });
                s.objects[7] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 1 });
                main(s).open_upvalues.extend([6, 7]);
            },
            Code::DuplicateOpenSlot,
        ),
        (
            "resume cycle",
            |s| {
                // main resumes the coroutine, which resumes main.
                make_resuming(s, 0, 13);
                make_resuming(s, 13, 0);
            },
            Code::ResumeCycle,
        ),
        ("resuming a coroutine that is not pre-empted", |s| make_resuming(s, 0, 13), Code::ResumeStatus),
        (
            "resuming something that is not a thread",
            |s| {
                make_resuming(s, 0, 13);
                main(s).stack[2] = Value::Number(1.0);
            },
            Code::ResumeStatus,
        ),
        ("pre-empted coroutine with no resumer", |s| coroutine(s).status = ThreadStatus::Preempted, Code::ResumeStatus),
        (
            "coroutine resumed twice",
            |s| {
                s.objects.push(s.objects[13].clone());
                let extra = s.objects.len() as u32 - 1;
                table(s, 1).array.push(Value::Object(extra));
                make_resuming(s, 0, 13);
                make_resuming(s, extra as usize, 13);
            },
            Code::ResumedTwice,
        ),
        (
            "a resume chain deeper than the VM nests resumes",
            |s| {
                let first = s.objects.len();
                for k in 0..210 {
                    s.objects.push(s.objects[13].clone());
                    table(s, 1).array.push(Value::Object((first + k) as u32));
                }
                make_resuming(s, 0, first as u32);
                for k in 0..209 {
                    make_resuming(s, first + k, (first + k + 1) as u32);
                }
                thread_at(s, first + 209).status = ThreadStatus::Preempted;
            },
            Code::ResumeChainTooDeep,
        ),
        (
            "source not available",
            |s| {
                s.scripts[0].source = None;
                s.scripts[0].hash = ScriptHash([1; 32]);
            },
            Code::SourceMissing,
        ),
        (
            "embedded source does not match its hash",
            |s| s.scripts[0].source = Some(b"tampered".to_vec()),
            Code::HashMismatch,
        ),
        ("duplicate script", |s| s.scripts.push(s.scripts[0].clone()), Code::DuplicateScript),
        ("proto out of range", |s| closure(s).proto = 40, Code::ProtoOutOfRange),
        ("closure upvalue count differs from its proto", |s| closure(s).proto = 3, Code::UpvalueCountMismatch),
        (
            "a used proto without a signature",
            |s| s.scripts[0].signatures.remove(0).proto.to_string().truncate(0),
            Code::SignatureMismatch,
        ),
        ("a signature of other code", |s| s.scripts[0].signatures[0].signature ^= 1, Code::SignatureMismatch),
        (
            "a signature of an unused proto",
            |s| s.scripts[0].signatures.push(ProtoSignature { proto: 3, signature: common::signature(3) }),
            Code::SignatureMismatch,
        ),
        ("permanent not allowlisted", |s| s.permanents[5] = "os.execute".into(), Code::PermanentNotAllowed),
        (
            "raw light userdata",
            |s| set_table_array(s, 0, Value::LightUserdata { tag: 0, bits: 0xdead_beef }),
            Code::RawLightUserdata,
        ),
        (
            "unknown codec",
            |s| {
                if let Object::Userdata(u) = &mut s.objects[12] {
                    u.kind = UserdataKind::Codec { tag: 1, codec: "socket".into(), payload: vec![] };
                }
            },
            Code::UnknownCodec,
        ),
    ];
    for (name, edit, code) in cases {
        let mut s = sample();
        edit(&mut s);
        let report = validate_model(s, &limits(), &TestCatalog).err().unwrap_or_default();
        let found = report.diagnostics.iter().find(|d| d.code == code);
        assert!(found.is_some(), "{name}: expected {code}, got {:?}", report.codes());
        // Shown with --nocapture: the examples of docs/DIAGNOSTICS.md are these lines.
        println!("{}", found.map(ToString::to_string).unwrap_or_default());
    }
}

/// The main function (proto 0 of the test script: `RETURN 0 1` in a frame of 2 registers)
/// pre-empted at its only yield point, the RETURN's interrupt: a valid frame to break.
fn preempted_at_return(s: &mut Snapshot) {
    let t = main(s);
    t.status = ThreadStatus::Preempted;
    t.frames = vec![Frame::Lua { yield_point: 0, varargs: 0 }];
    t.stack = vec![Value::Nil, Value::Object(2), Value::Nil, Value::Nil];
}

#[test]
fn frames_are_derived_and_every_derivation_is_checked() {
    let mut s = sample();
    preempted_at_return(&mut s);
    let verified = validate_model(s, &limits(), &TestCatalog).unwrap_or_else(|r| panic!("{r}"));
    let layout = verified.layout(0).expect("the main thread's layout");
    assert_eq!(layout.frames.len(), 1);
    let f = layout.frames[0];
    assert_eq!((f.func, f.base, f.top, f.nresults, f.flags), (1, 2, 4, -1, 1), "{f:?}");
    assert_eq!(f.kind, CallFrameKind::Lua { script: 0, proto: 0, yield_point: 0, saved_pc: 0 });
    assert_eq!((layout.base, layout.top), (2, 4));

    type Edit = fn(&mut Snapshot);
    let cases: Vec<(&str, Edit, Code)> = vec![
        (
            "a yield point past the map",
            |s| main(s).frames[0] = Frame::Lua { yield_point: 5, varargs: 0 },
            Code::YieldPointOutOfRange,
        ),
        (
            "extra arguments for a function that is not vararg",
            |s| main(s).frames[0] = Frame::Lua { yield_point: 0, varargs: 1 },
            Code::FrameGeometry,
        ),
        (
            "the stack cut below the frame's top",
            |s| {
                main(s).stack.pop();
            },
            Code::ThreadTop,
        ),
        ("the stack past the frame's top", |s| main(s).stack.push(Value::Nil), Code::ThreadTop),
        ("a C frame record over a Luau closure", |s| main(s).frames[0] = Frame::C, Code::FrameFunction),
        ("a yielded thread topped by a Luau frame", |s| main(s).status = ThreadStatus::Yielded, Code::YieldPointKind),
        (
            "a frame below the top at an interrupt",
            |s| {
                let t = main(s);
                t.frames.push(Frame::C);
            },
            Code::YieldPointKind,
        ),
        (
            "a position in a register no loop reads",
            |s| main(s).stack[3] = Value::IterPosition(0),
            Code::MisplacedPosition,
        ),
        (
            "an open upvalue on a register nothing captures",
            |s| {
                s.objects[6] = Object::Upvalue(Upvalue::Open { thread: 0, slot: 2 });
                main(s).open_upvalues.push(6);
            },
            Code::OpenUpvalueRegister,
        ),
    ];
    for (name, edit, code) in cases {
        let mut s = sample();
        preempted_at_return(&mut s);
        edit(&mut s);
        let report = validate_model(s, &limits(), &TestCatalog).err().unwrap_or_default();
        let found = report.diagnostics.iter().find(|d| d.code == code);
        assert!(found.is_some(), "{name}: expected {code}, got {report}");
        println!("{}", found.map(ToString::to_string).unwrap_or_default());
    }
}

fn table(s: &mut Snapshot, i: usize) -> &mut Table {
    match &mut s.objects[i] {
        Object::Table(t) => t,
        _ => panic!("object {i} is not a table"),
    }
}
fn set_table_array(s: &mut Snapshot, slot: usize, v: Value) {
    table(s, 4).array[slot] = v;
}
fn closure(s: &mut Snapshot) -> &mut LuaClosure {
    match &mut s.objects[5] {
        Object::LuaClosure(c) => c,
        _ => panic!("object 5 is not a closure"),
    }
}
fn c_closure(s: &mut Snapshot) -> &mut CClosure {
    match &mut s.objects[8] {
        Object::CClosure(c) => c,
        _ => panic!("object 8 is not a C closure"),
    }
}
fn thread_at(s: &mut Snapshot, i: usize) -> &mut Thread {
    match &mut s.objects[i] {
        Object::Thread(t) => t,
        _ => panic!("object {i} is not a thread"),
    }
}
fn main(s: &mut Snapshot) -> &mut Thread {
    thread_at(s, 0)
}
fn coroutine(s: &mut Snapshot) -> &mut Thread {
    thread_at(s, 13)
}
/// Makes thread `parent` pre-empted inside coroutine.resume(child), as its only frame.
fn make_resuming(s: &mut Snapshot, parent: usize, child: u32) {
    let resume = permanent("coroutine.resume");
    let t = thread_at(s, parent);
    t.status = ThreadStatus::Preempted;
    t.stack = vec![Value::Nil, Value::Permanent(resume), Value::Object(child)];
    t.frames = vec![Frame::C];
}

#[test]
fn format_errors_have_their_codes() {
    let good = encode(&sample());
    let check = |bytes: &[u8], code: Code| {
        let r = validate(bytes, &limits(), &TestCatalog).expect_err("refused");
        assert_eq!(r.codes(), vec![code], "{r}");
        println!("{}", r.diagnostics[0]);
    };
    check(b"NOTASNAP\x01", Code::BadMagic);
    check(b"AMB", Code::BadMagic);
    let mut v2 = good.clone();
    v2[8] = 1; // version 1 predates derived frames
    check(&v2, Code::UnsupportedVersion);
    check(&good[..good.len() - 1], Code::Truncated);
    let mut overlong = good[..8].to_vec();
    overlong.extend_from_slice(&[0x81, 0x00]);
    check(&overlong, Code::BadVarint);
    let mut trailing = good.clone();
    trailing.push(0);
    check(&trailing, Code::TrailingBytes);
    let mut wrong_section = good.clone();
    wrong_section[9] = 4;
    check(&wrong_section, Code::SectionMismatch);
    // A huge object count in a tiny objects section.
    let mut s = sample();
    s.objects.truncate(0);
    s.roots.main_thread = 0;
    let mut b = encode(&s);
    let at = find_section(&b, 4);
    b.splice(at + 2..at + 3, [0xff, 0xff, 0x03]);
    b[at + 1] = 3;
    check(&b, Code::CountExceedsInput);
    // Unknown object tag, non-canonical boolean, non-UTF-8 name.
    let mut b = encode(&sample());
    let at = section_body(&b, 4);
    b[at + 1] = 99; // after the one-byte object count: the first object's tag
    check(&b, Code::UnknownTag);
    let mut s = sample();
    s.scripts[0].source = None;
    let mut b = encode(&s);
    let at = section_body(&b, 2);
    let source_flag = at + 1 + 32 + 1 + "=test".len();
    assert_eq!(b[source_flag], 0);
    b[source_flag] = 2;
    check(&b, Code::NonCanonical);
    let mut s = sample();
    s.permanents[0] = "\u{e9}".into();
    let mut b = encode(&s);
    let at = section_body(&b, 3);
    b[at + 2] = 0xff; // count, length, then the name's first byte: now invalid UTF-8
    check(&b, Code::BadText);
    // A chunk name with a NUL byte (the runtime makes a C string of it).
    let mut s = sample();
    s.scripts[0].chunk_name = "=te\0st".into();
    check(&encode(&s), Code::BadText);
    // A globals-layout position flag that is not a boolean.
    let mut s = sample();
    s.roots.globals_layout = vec![None, Some(b"print".to_vec())];
    let mut b = encode(&s);
    let roots = section_body(&b, 5);
    let flag = roots + 1 + 8 + 1; // main thread, random state, position count
    assert_eq!(b[flag], 0);
    b[flag] = 7;
    check(&b, Code::NonCanonical);
    // Proto signatures out of proto order.
    let mut s = sample();
    s.scripts[0].signatures.reverse();
    check(&encode(&s), Code::NonCanonical);
    // A closure whose environment is a number, nil or a vector: not even a reference.
    let mut s = sample();
    if let Object::LuaClosure(c) = &mut s.objects[2] {
        c.env = EnvRef::Permanent(0);
    }
    let b = encode(&s);
    for env in [&[9u8, 10][..], &[0], &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] {
        let closure_then = |env: &[u8]| [&[3u8, 0, 0][..], env, &[0]].concat();
        check(&rewrite_objects(&b, &closure_then(&[7, 0]), &closure_then(env)), Code::WrongType);
    }
}

/// Offset of the first byte after the id and length of the section with this id.
fn section_body(bytes: &[u8], id: u8) -> usize {
    let mut p = find_section(bytes, id) + 1;
    while bytes[p] & 0x80 != 0 {
        p += 1;
    }
    p + 1
}

/// Offset of the section with this id (sections follow the magic and version).
fn find_section(bytes: &[u8], id: u8) -> usize {
    let mut at = 9;
    loop {
        if bytes[at] == id {
            return at;
        }
        let mut len = 0usize;
        let mut shift = 0;
        let mut p = at + 1;
        loop {
            let b = bytes[p];
            len |= usize::from(b & 0x7f) << shift;
            p += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        at = p + len;
    }
}

#[test]
fn limits_are_enforced_with_their_codes() {
    let bytes = encode(&sample());
    let refuse = |limits: Limits, code: Code| {
        let r = validate(&bytes, &limits, &TestCatalog).expect_err("refused");
        assert!(r.codes().contains(&code), "expected {code}: {r}");
        println!("{}", r.diagnostics.iter().find(|d| d.code == code).map(ToString::to_string).unwrap_or_default());
    };
    refuse(Limits { max_input_bytes: 10, ..limits() }, Code::InputTooLarge);
    refuse(Limits { max_objects: 3, ..limits() }, Code::TooManyObjects);
    refuse(Limits { max_string_bytes: 3, ..limits() }, Code::StringTooLong);
    refuse(Limits { max_table_entries: 2, ..limits() }, Code::TableTooLarge);
    refuse(Limits { max_buffer_bytes: 2, ..limits() }, Code::BufferTooLarge);
    refuse(Limits { max_stack_slots: 1, ..limits() }, Code::StackTooLarge);
    refuse(Limits { max_permanents: 2, ..limits() }, Code::TooManyEntries);
    let mut s = sample();
    main(&mut s).frames.push(Frame::C);
    let r = validate(&encode(&s), &Limits { max_frames: 0, ..limits() }, &TestCatalog).expect_err("refused");
    assert!(r.codes().contains(&Code::TooManyFrames), "{r}");
    println!("{}", r.diagnostics[0]);
}

#[test]
fn a_report_lists_independent_findings_up_to_the_cap() {
    let mut s = sample();
    set_table_array(&mut s, 0, Value::Object(999));
    closure(&mut s).proto = 40;
    s.permanents[5] = "os.execute".into();
    let r = validate_model(s.clone(), &limits(), &TestCatalog).expect_err("refused");
    for code in [Code::ObjectOutOfRange, Code::ProtoOutOfRange, Code::PermanentNotAllowed] {
        assert!(r.codes().contains(&code), "{code} missing: {r}");
    }
    let r = validate_model(s, &Limits { max_diagnostics: 1, ..limits() }, &TestCatalog).expect_err("refused");
    assert_eq!(r.diagnostics.len(), 1);
    assert!(r.omitted >= 2);
}

#[test]
fn paths_name_objects_and_slots_a_person_can_follow() {
    let mut s = sample();
    table(&mut s, 4).metatable = Some(Value::Object(3));
    let r = validate_model(s, &limits(), &TestCatalog).expect_err("refused");
    let d = &r.diagnostics[0];
    assert_eq!(d.path.to_string(), "table#4 > metatable");
    assert!(d.to_string().contains("R003") && d.to_string().contains("must be a table"), "{d}");

    let mut s = sample();
    if let Some(Some((_, v))) = table(&mut s, 4).hash.iter_mut().find(|n| matches!(n, Some((Value::Object(3), _)))) {
        *v = Value::IterPosition(3);
    }
    let r = validate_model(s, &limits(), &TestCatalog).expect_err("refused");
    assert_eq!(r.diagnostics[0].path.to_string(), "table#4 > key \"key#0\" > value");
}

#[test]
fn a_generated_model_with_every_kind_validates() {
    use ValueSpec::*;
    let s = build(&[
        ObjectSpec::Table { array: vec![], hash: vec![(Ref(0), Ref(0))], metatable: Some(0), readonly: true },
        ObjectSpec::Coroutine { stack: vec![Ref(1), Permanent(1)] },
    ]);
    validate_model(s, &limits(), &TestCatalog).unwrap_or_else(|r| panic!("{r}"));
}

#[test]
fn every_code_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/DIAGNOSTICS.md"))
        .expect("docs/DIAGNOSTICS.md");
    for code in Code::ALL {
        assert!(doc.contains(&format!("### {}", code.as_str())), "{code} is not documented");
        assert!(doc.contains(code.rule()), "{code}'s rule text is not in the docs");
    }
}

/// Each object's span in an encoding holds exactly that object's bytes: the same bytes a
/// snapshot of the objects up to it holds there, and the spans tile the objects section.
#[test]
fn spans_locate_every_object_script_and_section() {
    use amber_validator::snapshot::format::encode_with_spans;
    let s = sample();
    let (bytes, spans) = encode_with_spans(&s);
    assert_eq!(bytes, encode(&s));
    assert_eq!(spans.objects.len(), s.objects.len());
    assert_eq!(spans.scripts.len(), s.scripts.len());
    assert_eq!(spans.permanents.len(), s.permanents.len());
    let names: Vec<&str> = spans.sections.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["header", "scripts", "permanents", "objects", "roots"]);
    assert_eq!(spans.section("roots").map(|r| r.end), Some(bytes.len()));
    let section = spans.section("objects").expect("objects section");
    for (k, span) in spans.objects.iter().enumerate() {
        assert!(section.start < span.start && span.end <= section.end, "object {k} inside its section");
        if k > 0 {
            assert_eq!(spans.objects[k - 1].end, span.start, "objects tile the section");
        }
        // An object's encoding depends on the objects before it (NEXT references, upvalue
        // deltas): the same prefix of objects encodes it to the same bytes.
        let prefix = Snapshot { objects: s.objects[..=k].to_vec(), ..s.clone() };
        let (one, one_spans) = encode_with_spans(&prefix);
        assert_eq!(&one[one_spans.objects[k].clone()], &bytes[span.clone()], "object {k}");
    }
    assert_eq!(spans.objects.last().map(|r| r.end), Some(section.end));
    for (k, span) in spans.permanents.iter().enumerate() {
        let name = s.permanents[k].as_bytes();
        assert_eq!(&bytes[span.end - name.len()..span.end], name, "permanent {k}");
    }
    for (k, span) in spans.scripts.iter().enumerate() {
        assert_eq!(&bytes[span.start..span.start + 32], &s.scripts[k].hash.0, "script {k} starts with its hash");
    }
}

/// R015: the globals layout is a hash part's: a power of two of positions, each name once.
#[test]
fn globals_layouts_are_hash_parts() {
    let refused_with = |layout: Vec<Option<&str>>| {
        let mut s = sample();
        s.roots.globals_layout = layout.into_iter().map(|n| n.map(|n| n.as_bytes().to_vec())).collect();
        validate_model(s, &limits(), &TestCatalog).err().map(|r| r.codes())
    };
    assert_eq!(refused_with(vec![]), None);
    assert_eq!(refused_with(vec![Some("print"), None, Some("x"), None]), None);
    assert_eq!(refused_with(vec![Some("print"), None, Some("x")]), Some(vec![Code::GlobalsLayout]));
    assert_eq!(refused_with(vec![Some("print"), Some("x"), None, Some("print")]), Some(vec![Code::GlobalsLayout]));
}

/// R014: keys sit where Luau's lookups look for them. Luau's own layouts pass (the testkit lays
/// tables out as `luaH_newkey` does); keys moved into another chain's main position, integer keys
/// of the array's range and NaN vector keys are refused.
#[test]
fn hash_layout_is_luaus() {
    use ValueSpec::*;
    let with_keys = |keys: Vec<(ValueSpec, ValueSpec)>, array: Vec<ValueSpec>| {
        build(&[ObjectSpec::Table { array, hash: keys, metatable: None, readonly: false }])
    };
    fn table_of(s: &mut Snapshot) -> &mut Table {
        s.objects.iter_mut().rev().find_map(|o| if let Object::Table(t) = o { Some(t) } else { None }).unwrap()
    }
    let refused_with = |s: &Snapshot| validate_model(s.clone(), &limits(), &TestCatalog).err().map(|r| r.codes());

    // Two number keys with different main positions, swapped, break both chains.
    let mut found = false;
    for a in 1..40 {
        let mut s = with_keys(vec![(Number(a as f64 + 0.5), Nil), (Number(-(a as f64)), Nil)], vec![]);
        assert_eq!(refused_with(&s), None, "Luau's own layout is valid");
        let t = table_of(&mut s);
        assert_eq!(t.hash.len(), 2);
        t.hash.swap(0, 1);
        match refused_with(&s) {
            None => continue, // the two keys share a main position: either order is a chain
            Some(codes) => {
                assert_eq!(codes, vec![Code::HashLayout]);
                found = true;
                break;
            }
        }
    }
    assert!(found, "some pair of keys has two main positions");

    // An integer key of the array's range in the hash part.
    let mut s = with_keys(vec![(Number(10.5), Boolean(true))], vec![Nil, Nil, Nil]);
    let t = table_of(&mut s);
    t.hash[0] = Some((Value::Number(2.0), Value::Boolean(true)));
    assert_eq!(refused_with(&s), Some(vec![Code::HashLayout]));
    // Just past the array is a hash key.
    let t = table_of(&mut s);
    t.hash[0] = Some((Value::Number(4.0), Value::Boolean(true)));
    assert_eq!(refused_with(&s), None);

    // A vector key with a NaN component.
    let t = table_of(&mut s);
    t.hash[0] = Some((Value::Vector([0.0, f32::NAN, 1.0]), Value::Boolean(true)));
    assert_eq!(refused_with(&s), Some(vec![Code::HashLayout]));
}

/// Replaces the first occurrence of `from` in the objects section with `to`, fixing the
/// section's length: the way to write a non-canonical encoding the encoder never makes.
fn rewrite_objects(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = find_section(bytes, 4);
    let body = section_body(bytes, 4);
    let mut len = 0usize;
    let mut shift = 0;
    for &b in &bytes[at + 1..body] {
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
    }
    let mut inner = bytes[body..body + len].to_vec();
    let k = inner.windows(from.len()).position(|w| w == from).expect("the pattern is in the objects section");
    inner.splice(k..k + from.len(), to.iter().copied());
    let mut out = bytes[..at + 1].to_vec();
    let mut n = inner.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&inner);
    out.extend_from_slice(&bytes[body + len..]);
    out
}

/// Format v4's compact forms are the only forms: integers as INTEGER, object references that
/// follow the last one as NEXT, arithmetic runs in arrays as STEP. Any other spelling of the same
/// model is refused (F007), and each decodes back to the model.
#[test]
fn compact_forms_are_canonical() {
    use ValueSpec::*;
    let table =
        |array: Vec<ValueSpec>| build(&[ObjectSpec::Table { array, hash: vec![], metatable: None, readonly: false }]);
    let number = |n: f64| [&[3u8][..], &n.to_le_bytes()].concat();
    let step = 11u8;
    let integer = |i: i64| [9u8, ((i << 1) ^ (i >> 63)) as u8].to_vec(); // one-byte zigzag for small i

    // An arithmetic run: 1.5, 2.5 written out, 3.5 as a STEP; writing it out is refused.
    let s = table(vec![Number(1.5), Number(2.5), Number(3.5)]);
    let bytes = encode(&s);
    let canonical = [number(2.5), vec![step]].concat();
    assert_eq!(decode(&bytes, &Limits::default()).map(|m| m == s).ok(), Some(true));
    let spelled = rewrite_objects(&bytes, &canonical, &[number(2.5), number(3.5)].concat());
    assert_eq!(decode(&spelled, &Limits::default()).unwrap_err().code, Code::NonCanonical);
    // A STEP where the two values before are not numbers is refused.
    let s = table(vec![Boolean(true), Number(2.5), Number(7.0)]);
    let bytes = encode(&s);
    let stepped = rewrite_objects(&bytes, &[number(2.5), integer(7)].concat(), &[number(2.5), vec![step]].concat());
    assert_eq!(decode(&stepped, &Limits::default()).unwrap_err().code, Code::NonCanonical);

    // An integer as a float is refused.
    let s = table(vec![Number(7.0), Boolean(false)]);
    let bytes = encode(&s);
    let floated = rewrite_objects(&bytes, &[integer(7), vec![1]].concat(), &[number(7.0), vec![1]].concat());
    assert_eq!(decode(&floated, &Limits::default()).unwrap_err().code, Code::NonCanonical);
    // -0 is not an integer: it stays a float, and decodes with its sign.
    let s = table(vec![Number(-0.0), Boolean(false)]);
    let m = decode(&encode(&s), &Limits::default()).unwrap();
    assert_eq!(m, s);

    // References: two strings made one after the other are objects 3 and 4, so an array naming
    // them writes object 3 and then a NEXT; spelled out, it is refused.
    let s = build(&[
        ObjectSpec::String(b"a".to_vec()),
        ObjectSpec::String(b"b".to_vec()),
        ObjectSpec::Table { array: vec![Ref(1), Ref(2)], hash: vec![], metatable: None, readonly: false },
    ]);
    let bytes = encode(&s);
    let (next, object) = (10u8, 6u8);
    let spelled_ref = rewrite_objects(&bytes, &[object, 3, next], &[object, 3, object, 4]);
    assert_eq!(decode(&spelled_ref, &Limits::default()).unwrap_err().code, Code::NonCanonical);
}

/// A hash part over 16 nodes finds repeated keys by sorting each class of key apart (objects by
/// string equality class, numbers by bits with -0 as 0, the rest whole): each class's repeat is
/// refused, and the same part with distinct keys is not.
#[test]
fn large_hash_parts_refuse_repeated_keys_of_every_class() {
    fn with_keys(keys: &[Value]) -> Report {
        let mut s = sample();
        let t = table(&mut s, 4);
        t.hash = vec![None; 32];
        for (n, k) in keys.iter().enumerate() {
            t.hash[n] = Some((*k, Value::Boolean(true)));
        }
        t.insert_hint = 0;
        t.node_of = None;
        validate_model(s, &limits(), &TestCatalog).err().unwrap_or_default()
    }
    let twice = |r: &Report| {
        r.diagnostics.iter().filter(|d| d.code == Code::BadTableShape && d.message.contains("appears twice")).count()
    };
    // Numbers 100..120, the string object 3 and false: distinct.
    let distinct: Vec<Value> =
        (100..120).map(|n| Value::Number(f64::from(n))).chain([Value::Object(3), Value::Boolean(false)]).collect();
    assert_eq!(twice(&with_keys(&distinct)), 0, "{}", with_keys(&distinct));
    for (what, extra) in [
        ("a number", Value::Number(107.0)),
        ("the same string object", Value::Object(3)),
        ("a boolean", Value::Boolean(false)),
    ] {
        let mut keys = distinct.clone();
        keys.push(extra);
        assert_eq!(twice(&with_keys(&keys)), 1, "{what}: {}", with_keys(&keys));
    }
    let zeros = [Value::Number(0.0), Value::Number(-0.0)];
    let keys: Vec<Value> = distinct.iter().copied().chain(zeros).collect();
    assert_eq!(twice(&with_keys(&keys)), 1, "0 and -0 are one key: {}", with_keys(&keys));
    // A second string with the same bytes as object 3 is the same key (and a duplicate string).
    let mut s = sample();
    s.objects.push(s.objects[3].clone());
    let copy = s.objects.len() as u32 - 1;
    let t = table(&mut s, 4);
    t.hash = vec![None; 32];
    for (n, k) in distinct.iter().chain([&Value::Object(copy)]).enumerate() {
        t.hash[n] = Some((*k, Value::Boolean(true)));
    }
    t.insert_hint = 0;
    let report = validate_model(s, &limits(), &TestCatalog).err().unwrap_or_default();
    assert_eq!(twice(&report), 1, "{report}");
    assert!(report.diagnostics.iter().any(|d| d.code == Code::DuplicateString), "{report}");
}

/// Strings are kept inline up to `Bytes::INLINE` bytes and on the heap beyond; either way they
/// read back, compare and round-trip the same.
#[test]
fn strings_on_both_sides_of_the_inline_limit_round_trip() {
    for len in [0, 1, Bytes::INLINE - 1, Bytes::INLINE, Bytes::INLINE + 1, 1000] {
        let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let from_vec = Bytes::from(text.clone());
        let from_slice = Bytes::from(text.as_slice());
        assert_eq!(from_vec.as_slice(), text.as_slice(), "len {len}");
        assert_eq!(from_vec, from_slice, "len {len}");
        assert_eq!(&*from_slice, text.as_slice(), "len {len}");
        let mut s = sample();
        s.objects[3] = Object::String(from_vec);
        let bytes = encode(&s);
        let back = decode(&bytes, &Limits::default()).expect("decodes");
        assert_eq!(back, s, "len {len}");
        assert_eq!(encode(&back), bytes, "len {len}");
    }
}

/// R014 on hash parts larger than the small-table path (more than 16 nodes), with and without a
/// node map: Luau's own layout passes in any iteration order; two keys with different main
/// positions swapped between their nodes are refused.
#[test]
fn large_hash_layouts_are_luaus_with_and_without_a_node_map() {
    use ValueSpec::*;
    let keys: Vec<(ValueSpec, ValueSpec)> =
        (0..100).map(|k| (if k % 2 == 0 { Number(k as f64 + 0.5) } else { Number(-(k as f64)) }, Nil)).collect();
    let base = build(&[ObjectSpec::Table { array: vec![], hash: keys, metatable: None, readonly: false }]);
    fn table_of(s: &mut Snapshot) -> &mut Table {
        s.objects.iter_mut().rev().find_map(|o| if let Object::Table(t) = o { Some(&mut **t) } else { None }).unwrap()
    }
    let refused_with = |s: &Snapshot| validate_model(s.clone(), &limits(), &TestCatalog).err().map(|r| r.codes());
    // Iteration order rotated by one node, through a node map.
    let mapped = |s: &Snapshot| {
        let mut s = s.clone();
        let t = table_of(&mut s);
        let n = t.hash.len();
        let order: Vec<usize> = (0..n).map(|p| (p + 1) % n).collect();
        t.node_of =
            Some(order.iter().map(|&node| if t.hash[node].is_some() { node as u32 } else { u32::MAX }).collect());
        t.hash = order.iter().map(|&node| t.hash[node]).collect();
        s
    };
    let hash_len = table_of(&mut base.clone()).hash.len();
    assert!(hash_len > 16, "{hash_len} nodes take the large-table path");
    assert_eq!(refused_with(&base), None, "Luau's own layout is valid");
    assert_eq!(refused_with(&mapped(&base)), None, "in another iteration order too");
    let mut refused = 0;
    for a in 0..hash_len {
        let mut s = base.clone();
        let t = table_of(&mut s);
        let b = (a + 1) % hash_len;
        if t.hash[a].is_none() || t.hash[b].is_none() {
            continue;
        }
        t.hash.swap(a, b);
        match refused_with(&s) {
            None => continue, // the two keys share a main position
            Some(codes) => {
                assert_eq!(codes, vec![Code::HashLayout], "nodes {a} and {b} swapped");
                assert_eq!(refused_with(&mapped(&s)), Some(vec![Code::HashLayout]), "mapped, nodes {a} and {b}");
                refused += 1;
            }
        }
    }
    assert!(refused > 10, "{refused} swaps refused");
}
