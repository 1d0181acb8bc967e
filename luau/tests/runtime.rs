//! The VM API and the pre-emptive scheduler.

use amber_luau::*;

fn compile(src: &str) -> Script {
    Script::compile(src, "=test").expect("compiles")
}

/// Runs to the end with the given budget per slice; returns output, final outcome and stats.
fn run(src: &str, ticks: u64) -> (String, Outcome, TaskStats) {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&compile(src)).unwrap();
    loop {
        let outcome = task.resume(Budget::ticks(ticks)).unwrap();
        match outcome {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            _ => return (String::from_utf8(task.take_output()).unwrap(), outcome, task.stats()),
        }
    }
}

const NESTED: &str = r#"
local function status(co) return coroutine.status(co) end
local c3 = coroutine.create(function()
    for i = 1, 3 do
        print("c3", i, coroutine.isyieldable(), status(coroutine.running()))
        coroutine.yield(i)
    end
    return "c3 done"
end)
local c2 = coroutine.wrap(function()
    while true do
        local ok, v = coroutine.resume(c3)
        print("c2", ok, v, status(c3), coroutine.isyieldable())
        if status(c3) == "dead" then return "c2 done" end
        coroutine.yield(v)
    end
end)
local c1 = coroutine.create(function()
    for i = 1, 10 do
        local v = c2()
        print("c1", v, status(c3))
        if v == "c2 done" then break end
    end
    return "c1 done"
end)
print("main", coroutine.resume(c1))
print("final", status(c1), status(c3), coroutine.isyieldable())
"#;

#[test]
fn three_deep_nesting_preempted_at_every_tick_matches_an_uninterrupted_run() {
    let (fresh, fresh_end, fresh_stats) = run(NESTED, u64::MAX);
    assert_eq!(fresh_stats.preemptions, 0);
    assert!(fresh.contains("c3\t1\ttrue\trunning"), "{fresh}");
    let (every_tick, end, stats) = run(NESTED, 1);
    assert_eq!(every_tick, fresh);
    assert_eq!(end, fresh_end);
    // Pre-empted at every interrupt site: one pre-emption per tick of the fresh run (the last
    // slice resumes at the last site and finishes without reaching another).
    assert_eq!(stats.preemptions, fresh_stats.ticks);
    assert_eq!(stats.ticks, fresh_stats.ticks);
    for n in [2, 3, 5, 17] {
        assert_eq!(run(NESTED, n).0, fresh, "budget {n}");
    }
}

#[test]
fn preemption_inside_a_coroutine_is_not_seen_by_its_resumer() {
    // If a pre-emption of the inner coroutine leaked as a yield, resume would return early
    // (true with no values) and the sum would be wrong.
    let src = r#"
        local co = coroutine.create(function()
            local s = 0
            for i = 1, 200 do s += i end
            return s
        end)
        local results = {coroutine.resume(co)}
        print(#results, results[1], results[2], coroutine.status(co))
    "#;
    assert_eq!(run(src, 1).0, "2\ttrue\t20100\tdead\n");
}

#[test]
fn same_budget_stops_at_the_same_site_every_time() {
    let src = "local t = {} for i = 1, 50 do t[#t+1] = tostring(i) .. string.rep('x', i % 3) end print(#t)";
    let sites = |budget: u64| {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&compile(src)).unwrap();
        let mut sites = Vec::new();
        while task.resume(Budget::ticks(budget)).unwrap() == Outcome::Preempted {
            sites.push(task.suspend_site().expect("every pre-emption has a site in the yield-point map"));
        }
        sites
    };
    for budget in [1, 3, 10] {
        let a = sites(budget);
        let b = sites(budget);
        assert!(!a.is_empty());
        assert_eq!(a, b, "budget {budget}");
    }
    // Budget 1 visits every site; budget 3 stops at every third counted tick of those.
    let all = sites(1);
    let third = sites(3);
    let expected: Vec<_> = all.iter().skip(2).step_by(3).cloned().collect();
    assert_eq!(third, expected);
}

#[test]
fn a_never_ending_loop_is_stopped_by_its_budget() {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&compile("local n = 0 while true do n += 1 end")).unwrap();
    for _ in 0..5 {
        assert_eq!(task.resume(Budget::ticks(1000)).unwrap(), Outcome::Preempted);
    }
    assert_eq!(task.stats().ticks, 5000);
    let site = task.suspend_site().unwrap();
    assert_eq!(site.line, 1);
    assert_eq!(site.chunk, "=test");
}

#[test]
fn runaway_code_where_the_chain_cannot_break_is_killed() {
    let cases = [
        // a metamethod that never returns (string.rep inside it, as the issue names)
        "local t = setmetatable({}, {__index = function() while true do local s = string.rep('a', 100) end end}) return t.x",
        // a sort comparator that never returns
        "table.sort({3, 2, 1}, function(a, b) while true do end end)",
        // catastrophic pattern matching inside a metamethod: the matcher's steps tick, but the
        // chain cannot break there (on its own the matcher is pre-empted: tests/matcher.rs)
        "local t = setmetatable({}, {__index = function() return string.find(string.rep('a', 40000), string.rep('a-', 30) .. 'b') end}) return t.x",
        // pcall cannot catch the kill: the error is raised again at every later interrupt
        "while true do pcall(function() local t = setmetatable({}, {__index = function() while true do end end}) return t.x end) end",
    ];
    for src in cases {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&compile(src)).unwrap();
        let budget = Budget::ticks(100).with_defer_cap(20_000);
        let mut slices = 0;
        let outcome = loop {
            slices += 1;
            assert!(slices < 100_000, "never killed: {src}");
            match task.resume(budget).unwrap() {
                Outcome::Preempted => continue,
                other => break other,
            }
        };
        match outcome {
            Outcome::Killed(reason) => {
                assert!(matches!(reason, KillReason::Deferred { .. }), "{reason}");
                assert!(reason.to_string().contains("deferred"), "{reason}");
            }
            other => panic!("{src}: expected a kill, got {other:?}"),
        }
        assert!(task.stats().deferrals >= 1);
        assert!(task.resume(budget).is_err(), "a killed task cannot be resumed");
        // The VM stays usable.
        let mut other = vm.spawn(&compile("return 1 + 1")).unwrap();
        assert_eq!(other.resume(Budget::unlimited()).unwrap(), Outcome::Finished(vec![Value::Number(2.0)]));
    }
}

#[test]
fn short_metamethods_are_deferred_not_killed() {
    let src = r#"
        local t = setmetatable({}, {__index = function(_, k) local s = 0 for i = 1, 50 do s += i end return s end})
        local total = 0
        for i = 1, 20 do total += t[i] end
        print(total)
    "#;
    let (out, end, stats) = run(src, 1);
    assert_eq!(out, "25500\n");
    assert_eq!(end, Outcome::Finished(vec![]));
    assert!(stats.deferrals > 0, "pre-emption inside __index must have been deferred");
}

#[test]
fn errors_carry_message_and_traceback() {
    let src = "local function inner() error('deep failure') end\nlocal function outer() inner() end\nouter()\n";
    let (_, end, _) = run(src, 1);
    let Outcome::Errored(e) = end else { panic!("{end:?}") };
    assert_eq!(e.message, "test:1: deep failure");
    assert!(e.traceback.contains("function inner"), "{}", e.traceback);
    assert!(e.traceback.contains("function outer"), "{}", e.traceback);
    let (_, end, _) = run("error({})", 1000);
    let Outcome::Errored(e) = end else { panic!() };
    assert_eq!(e.message, "(error object is a table value)");
}

#[test]
fn compile_errors_carry_line_and_message() {
    let err = Script::compile("local x = 1\nlocal y = = 2\n", "=bad").unwrap_err();
    assert_eq!(err.line, 2);
    assert_eq!(err.chunk, "=bad");
    assert!(err.message.contains("Expected"), "{}", err.message);
    let err = Script::compile("for i = 1 do end", "=bad2").unwrap_err();
    assert_eq!(err.line, 1);
}

#[test]
fn yields_of_the_main_function_reach_the_host() {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&compile("coroutine.yield(1, 'a') coroutine.yield() return true")).unwrap();
    assert_eq!(
        task.resume(Budget::unlimited()).unwrap(),
        Outcome::Yielded(vec![Value::Number(1.0), Value::String(b"a".to_vec())])
    );
    assert_eq!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(vec![]));
    assert_eq!(task.resume(Budget::unlimited()).unwrap(), Outcome::Finished(vec![Value::Boolean(true)]));
    assert!(task.is_done());
}

#[test]
fn tasks_have_own_globals_and_random_streams_but_share_protos() {
    let vm = Vm::new().unwrap();
    let script = compile(
        "x = (x or 0) + 1 print(x, math.random(1, 1000000)) coroutine.yield() print(x, math.random(1, 1000000))",
    );
    let seeded = SpawnOptions { random_state: Some(42), ..SpawnOptions::default() };
    let mut a = vm.spawn_with(&script, seeded).unwrap();
    let mut b = vm.spawn_with(&script, seeded).unwrap();
    assert_eq!(a.main_proto(), b.main_proto(), "tasks of one script share its prototypes");
    // Interleave: a draws, b draws, a draws, b draws. Shared streams would make b differ from a.
    a.resume(Budget::unlimited()).unwrap();
    b.resume(Budget::unlimited()).unwrap();
    a.resume(Budget::unlimited()).unwrap();
    b.resume(Budget::unlimited()).unwrap();
    let (oa, ob) = (String::from_utf8(a.take_output()).unwrap(), String::from_utf8(b.take_output()).unwrap());
    assert_eq!(oa, ob, "same seed, own streams, own globals (x is 1 in both)");
    assert!(oa.starts_with("1\t"), "{oa}");
    // A task of another script in the same VM has other protos.
    let c = vm.spawn(&compile("return 2")).unwrap();
    assert_ne!(c.main_proto(), a.main_proto());
    // Different default seeds give different streams.
    let mut d = vm.spawn(&script).unwrap();
    let mut e = vm.spawn(&script).unwrap();
    d.resume(Budget::unlimited()).unwrap();
    e.resume(Budget::unlimited()).unwrap();
    assert_ne!(d.take_output(), e.take_output());
}

#[test]
fn the_base_image_is_immutable_and_has_no_fenv() {
    let src = r#"
        print(getfenv, setfenv, gcinfo())
        print(pcall(function() string.upper = nil end))
        print(pcall(function() rawset(string, "x", 1) end))
        print(pcall(function() getmetatable("").__index = {} end))
        newglobal = 5
        print(newglobal, rawget(_G, "newglobal"), _G.newglobal)
    "#;
    let (out, _, _) = run(src, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "nil\tnil\t0");
    for line in &lines[1..4] {
        assert!(line.starts_with("false\t") && line.contains("readonly"), "{line}");
    }
    // Globals a task writes land in its own proxy table; _G names the shared base globals.
    assert_eq!(lines[4], "5\tnil\tnil");
    // ... and another task does not see them.
    let (out, _, _) = run("print(newglobal)", 1);
    assert_eq!(out, "nil\n");
}

#[test]
fn memory_is_charged_to_the_task_category() {
    let vm = Vm::new().unwrap();
    let script = compile("local t = {} for i = 1, 20000 do t[i] = tostring(i) end keep = t");
    let before = vm.memory_used(7);
    let mut task =
        vm.spawn_with(&script, SpawnOptions { memory_category: 7, random_state: None, memory_limit: None }).unwrap();
    task.resume(Budget::unlimited()).unwrap();
    assert!(vm.memory_used(7) > before + 200_000, "{} -> {}", before, vm.memory_used(7));
}

#[test]
fn every_preemption_site_of_the_corpus_is_in_the_yield_point_map() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/scripts");
    for name in [
        "closures_upvalues.luau",
        "coroutines_nested.luau",
        "errors_pcall.luau",
        "metatables.luau",
        "varargs_select.luau",
    ] {
        let source = std::fs::read(dir.join(name)).unwrap();
        let script = Script::compile(&source, name).unwrap();
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&script).unwrap();
        let mut n = 0;
        loop {
            match task.resume(Budget::ticks(1)).unwrap() {
                Outcome::Preempted => {
                    task.suspend_site().unwrap_or_else(|| panic!("{name}: pre-emption {n} has no yield point"));
                    n += 1;
                }
                Outcome::Yielded(_) => {}
                _ => break,
            }
        }
        assert!(n > 10, "{name}");
    }
}

#[test]
fn a_deterministic_vm_has_a_fixed_clock_and_the_standard_registry() {
    let vm = Vm::deterministic().unwrap();
    assert_eq!(vm.permanents(), *PermanentRegistry::standard().unwrap(), "same names and kinds as Vm::new");
    // `_G` is the globals table itself: an alias of `@globals`, not a name of its own.
    let registry = vm.permanents();
    assert_eq!(registry.aliases, vec![("_G".to_string(), "@globals".to_string())]);
    assert!(registry.names.iter().any(|(n, _)| n == "@globals") && !registry.names.iter().any(|(n, _)| n == "_G"));
    let mut task = vm
        .spawn(&compile("print(os.clock(), os.time(), os.date('%Y-%m-%d %H:%M:%S'), os.date('!%Y', 0), os.time({year = 2000, month = 1, day = 1, hour = 0}) > 0)"))
        .unwrap();
    task.resume(Budget::unlimited()).unwrap();
    assert_eq!(String::from_utf8(task.take_output()).unwrap(), "0\t1700000000\t2023-11-14 22:13:20\t1970\ttrue\n");
}

#[test]
fn a_budget_can_preempt_right_after_every_coroutine_yield() {
    let src = "local co = coroutine.wrap(function() for i = 1, 5 do coroutine.yield(i) end end) local s = 0 for i = 1, 5 do s += co() end print(s)";
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&compile(src)).unwrap();
    let budget = Budget::unlimited().with_preemption_after_yields();
    let mut preemptions = 0;
    loop {
        match task.resume(budget).unwrap() {
            Outcome::Preempted => preemptions += 1,
            Outcome::Finished(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(preemptions, 5, "one pre-emption after each of the five yields");
    assert_eq!(task.take_output(), b"15\n");
    // Without the option an unlimited budget never pre-empts.
    let mut plain = vm.spawn(&compile(src)).unwrap();
    assert!(matches!(plain.resume(Budget::unlimited()).unwrap(), Outcome::Finished(_)));
}
