//! The frame, yield-point and register-type rules on real captures: the register dataflow's
//! needs at known yield points of compiled code, the derived layout against the live VM's own
//! call-info, and one attack per rule (a capture edited the way an attacker would), each refused
//! with its code.

mod common;

use amber_luau::{Budget, Outcome, Script, SourceCatalog, Vm, capture};
use amber_validator::bytecode::{Opcode, YieldKind};
use amber_validator::snapshot::*;
use amber_validator::{Code, Limits, validate_model};
use common::run_to_preemption;

fn point_after(script: &Script, proto: u32, op: Opcode, kind: YieldKind) -> amber_validator::bytecode::YieldPoint {
    *script.yield_map(proto).unwrap().points.iter().find(|p| p.op == op && p.kind == kind).expect("the point")
}

#[test]
fn the_dataflow_finds_what_the_vm_reads_unchecked() {
    let src = r#"
        local t = {}
        for i = 1, 3 do print(i) end
        for k, v in pairs(t) do print(k) end
        local list = {1, 2, print()}
        return list
    "#;
    let script = Script::compile(src, "=needs").unwrap();
    let main = script.module().main;
    let p = script.module().proto(main).unwrap();
    let forn = p.instructions.iter().find(|i| i.op == Opcode::FORNPREP).unwrap().a;
    let forg = p.instructions.iter().find(|i| i.op == Opcode::FORGLOOP).unwrap().a;
    let setlist = p.instructions.iter().find(|i| i.op == Opcode::SETLIST).unwrap().a;
    let map = script.yield_map(main).unwrap();
    // Inside the numeric for (the print's call-return): its three control registers are numbers.
    let in_numeric = map
        .points
        .iter()
        .find(|q| q.kind == YieldKind::Interrupt && q.op == Opcode::FORNLOOP)
        .expect("FORNLOOP interrupt");
    for r in u32::from(forn)..u32::from(forn) + 3 {
        assert!(in_numeric.needs.numbers.contains(r), "register {r} at FORNLOOP: {:?}", in_numeric.needs);
    }
    // At the generic for's loop test: the loop is live.
    let at_forg = point_after(&script, main, Opcode::FORGLOOP, YieldKind::Interrupt);
    assert!(at_forg.needs.loops.contains(u32::from(forg)));
    assert!(!at_forg.needs.numbers.contains(u32::from(forn)), "the numeric loop is over by then");
    // While print() is called inside the table constructor, SETLIST's table is pending.
    let pending = map
        .points
        .iter()
        .filter(|q| q.kind == YieldKind::CallReturn)
        .find(|q| q.needs.tables.contains(u32::from(setlist)));
    assert!(pending.is_some(), "no call-return with a pending SETLIST table: {map:?}");
}

#[test]
fn open_registers_are_captured_locals_not_loop_counters() {
    let src = "local f\nfor i = 1, 5 do local x = i f = function() x = x + 1 return x end f() end\nreturn f";
    let script = Script::compile(src, "=open").unwrap();
    let main = script.module().main;
    let p = script.module().proto(main).unwrap();
    let a = u32::from(p.instructions.iter().find(|i| i.op == Opcode::FORNPREP).unwrap().a);
    let call = script
        .yield_map(main)
        .unwrap()
        .points
        .iter()
        .find(|q| q.kind == YieldKind::CallReturn && q.instruction_pc > 0)
        .copied()
        .unwrap();
    let captured: Vec<u32> = call.open.iter().collect();
    assert_eq!(captured.len(), 1, "only x may be open at f(): {captured:?}");
    assert!(captured[0] > a + 2, "x lives above the loop's control registers");
    assert!(u32::from(call.closed_from) <= captured[0], "the loop body closes x before it returns or loops");
}

/// Captures `src` at its `k`-th pre-emption and returns the snapshot with the VM that made it.
fn captured_at(src: &str, k: u64) -> (Vm, amber_luau::Task, Snapshot) {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=rule").unwrap()).unwrap();
    assert!(run_to_preemption(&mut task, k), "the script ends before pre-emption {k}");
    let s = capture(&task).unwrap();
    (vm, task, s)
}

fn refuse(s: Snapshot, code: Code) {
    let r = validate_model(s, &Limits::default(), &SourceCatalog::embedded_only()).expect_err("must be refused");
    assert!(r.codes().contains(&code), "expected {code}: {r}");
}

fn main_thread(s: &mut Snapshot) -> &mut Thread {
    match &mut s.objects[0] {
        Object::Thread(t) => t,
        _ => unreachable!("object 0 is the main thread"),
    }
}

#[test]
fn the_derived_layout_is_the_vms_own() {
    // Nested Luau calls, pcall, xpcall, a generic-for iterator call and coroutine.yield.
    let src = r#"
        local function leaf(n) local s = 0 for i = 1, n do s = s + i end return s end
        local function gen(state, k) k = k + 1 if k <= 3 then leaf(50) return k end end
        local function mid(n) local t = 0 for k in gen, nil, 0 do t = t + k end return t + leaf(n) end
        local ok, v = pcall(function() return xpcall(mid, print, 40) end)
        print(ok, v)
    "#;
    let script = Script::compile(src, "=layout").unwrap();
    let total = {
        let vm = Vm::new().unwrap();
        let mut t = vm.spawn(&script).unwrap();
        let mut n = 0;
        while matches!(t.resume(Budget::ticks(1)).unwrap(), Outcome::Preempted) {
            n += 1;
        }
        n
    };
    for k in 1..=total {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&script).unwrap();
        assert!(run_to_preemption(&mut task, k));
        let s = capture(&task).unwrap();
        let verified = validate_model(s, &Limits::default(), &SourceCatalog::embedded_only())
            .unwrap_or_else(|r| panic!("pre-emption {k}: {r}"));
        let layout = verified.layout(0).expect("layout");
        let live = amber_luau::live_frames(&task).expect("a suspended task");
        assert_eq!(layout.frames.len(), live.len(), "pre-emption {k}");
        for (d, l) in layout.frames.iter().zip(&live) {
            assert_eq!((d.func, d.base, d.nresults, d.flags), (l.func, l.base, l.nresults, l.flags), "pre-emption {k}");
            if let amber_validator::CallFrameKind::Lua { saved_pc, .. } = d.kind {
                assert_eq!(Some(saved_pc), l.saved_pc, "pre-emption {k}");
                assert!(d.top <= l.top, "a derived Luau top never exceeds the VM's (pre-emption {k})");
            }
        }
    }
}

#[test]
fn an_open_upvalue_moved_onto_a_loop_counter_is_refused() {
    // x is captured by reference inside the loop (the closure assigns it); an attacker moves its
    // open upvalue onto the loop's index register, which the closure could then overwrite.
    let src = "for i = 1, 1e9 do local x = i local f = function() x = 'boom' end f() end";
    let script = Script::compile(src, "=rule").unwrap();
    let p = script.module().proto(script.module().main).unwrap();
    let a = u32::from(p.instructions.iter().find(|i| i.op == Opcode::FORNPREP).unwrap().a);
    let (_vm, _task, mut s) = captured_at(src, 40);
    let open: Vec<u32> = main_thread(&mut s).open_upvalues.clone();
    assert!(!open.is_empty(), "x is open while the loop body runs");
    let u = open[0] as usize;
    let Object::Upvalue(Upvalue::Open { slot, .. }) = s.objects[u] else { panic!("open upvalue") };
    // The counter's slot: the frame's base (derived for the valid capture) plus A + 2.
    let verified = validate_model(s.clone(), &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let counter = verified.layout(0).unwrap().frames[0].base + a + 2;
    assert_ne!(counter, slot);
    s.objects[u] = Object::Upvalue(Upvalue::Open { thread: 0, slot: counter });
    refuse(s, Code::OpenUpvalueRegister);
}

#[test]
fn a_numeric_for_counter_of_another_type_is_refused() {
    let src = "local s = 0 for i = 1, 1e9 do s = s + i end";
    let script = Script::compile(src, "=rule").unwrap();
    let p = script.module().proto(script.module().main).unwrap();
    let a = u32::from(p.instructions.iter().find(|i| i.op == Opcode::FORNPREP).unwrap().a);
    let (_vm, _task, mut s) = captured_at(src, 30);
    let verified = validate_model(s.clone(), &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let base = verified.layout(0).unwrap().frames[0].base;
    let string = s.objects.iter().position(|o| matches!(o, Object::String(_))).map(|i| i as u32);
    let v = string.map_or(Value::Boolean(true), Value::Object);
    main_thread(&mut s).stack[(base + a + 2) as usize] = v;
    refuse(s, Code::RegisterType);
}

#[test]
fn a_generic_for_position_past_its_table_is_refused() {
    let src = "local t = {} for i = 1, 100 do t[i] = i end local n = 0 for k, v in pairs(t) do n = n + v end";
    let (_vm, _task, mut s) = captured_at(src, 150);
    let t = main_thread(&mut s);
    let at = t.stack.iter().position(|v| matches!(v, Value::IterPosition(_))).expect("a live position");
    t.stack[at] = Value::IterPosition(1 << 20);
    refuse(s, Code::IterPositionOutOfRange);
}

#[test]
fn another_compiler_setting_is_refused_naming_the_proto() {
    // At -O2 the compiler inlines f into the loop: other code, other yield points.
    let src = "local function f(n) return n * 2 + 1 end local s = 0 for j = 1, 1e9 do s = s + f(j) end";
    let other = CompilerSettings { optimization_level: 2, debug_level: 1 };
    let bytecode = |settings| Script::compile_with(src, "=rule", settings).unwrap().bytecode().to_vec();
    assert_ne!(bytecode(CompilerSettings::default()), bytecode(other), "the settings must change the code");
    let (_vm, _task, mut s) = captured_at(src, 25);
    s.header.compiler = other;
    let r = validate_model(s, &Limits::default(), &SourceCatalog::embedded_only()).expect_err("refused");
    let d = r.diagnostics.iter().find(|d| d.code == Code::SignatureMismatch).unwrap_or_else(|| panic!("{r}"));
    assert!(d.message.contains("proto") && d.message.contains("signature"), "{d}");
}

#[test]
fn the_derived_layout_is_the_vms_own_across_the_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/scripts");
    let mut compared = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read(&path).unwrap();
        let script = Script::compile(&source, "=corpus").unwrap();
        // About 12 points spread over the run's ticks, each in a fresh task.
        let total = {
            let vm = Vm::new().unwrap();
            let mut t = vm.spawn(&script).unwrap();
            while matches!(t.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)) {}
            t.stats().ticks
        };
        for k in (1..=total).step_by((total / 12).max(1) as usize) {
            let vm = Vm::new().unwrap();
            let mut task = vm.spawn(&script).unwrap();
            let reached = loop {
                let left = k.saturating_sub(task.stats().ticks).max(1);
                match task.resume(Budget::ticks(left)).unwrap() {
                    Outcome::Preempted if task.stats().ticks + 1 >= k => break true,
                    Outcome::Preempted | Outcome::Yielded(_) => {}
                    _ => break false,
                }
            };
            if !reached {
                continue;
            }
            let s = capture(&task).unwrap();
            let verified = validate_model(s, &Limits::default(), &SourceCatalog::embedded_only())
                .unwrap_or_else(|r| panic!("{}: pre-emption {k}: {r}", path.display()));
            let layout = verified.layout(0).unwrap();
            let live = amber_luau::live_frames(&task).unwrap();
            assert_eq!(layout.frames.len(), live.len());
            for (n, (d, l)) in layout.frames.iter().zip(&live).enumerate() {
                let at = format!("{} pre-emption {k} frame {n}", path.display());
                assert_eq!((d.func, d.base, d.nresults, d.flags), (l.func, l.base, l.nresults, l.flags), "{at}");
                if let amber_validator::CallFrameKind::Lua { saved_pc, .. } = d.kind {
                    assert_eq!(Some(saved_pc), l.saved_pc, "{at}");
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 500, "{compared} frames compared");
}
