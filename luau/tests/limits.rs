//! Resource limits a host relies on: a task's memory limit (killed at it, uncatchably, the VM and
//! other tasks unharmed, its memory returned once dropped), restore refusing a state that cannot
//! fit before building anything, and total tick and wall-clock budgets.

use amber_luau::*;
use amber_validator::{Limits, encode, validate};
use std::time::Duration;

const BOMB: &str = r#"local t = {} for i = 1, 1e7 do t[i] = string.rep("x", 1e5) .. i end"#;
const MIB: usize = 1 << 20;

fn run(task: &mut Task, budget: Budget) -> Outcome {
    loop {
        match task.resume(budget).unwrap() {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            o => return o,
        }
    }
}

fn limited(vm: &Vm, src: &str, category: u8, limit: usize) -> Task {
    let options = SpawnOptions { memory_category: category, memory_limit: Some(limit), ..Default::default() };
    vm.spawn_with(&Script::compile(src, "=limits").unwrap(), options).unwrap()
}

#[test]
fn the_memory_bomb_is_killed_at_its_limit_and_the_vm_lives_on() {
    let vm = Vm::new().unwrap();
    let mut bomb = limited(&vm, BOMB, 9, 64 * MIB);
    let outcome = run(&mut bomb, Budget::ticks(1000));
    let Outcome::Killed(KillReason::MemoryLimit { limit, used }) = outcome else {
        panic!("expected a memory kill, got {outcome:?}")
    };
    assert_eq!(limit, 64 * MIB);
    assert!(used <= limit && used > limit / 2, "killed at {used} of {limit}");
    assert!(vm.memory_used(9) <= limit + MIB, "the category stayed at its limit: {}", vm.memory_used(9));
    assert!(bomb.resume(Budget::unlimited()).is_err(), "a killed task stays dead");

    // Another task of the same VM runs, unaffected.
    let mut other =
        vm.spawn(&Script::compile("local s = 0 for i = 1, 1e5 do s += i end print(s)", "=other").unwrap()).unwrap();
    assert!(matches!(run(&mut other, Budget::ticks(500)), Outcome::Finished(_)));
    assert_eq!(other.take_output(), b"5000050000\n");

    // The killed task's memory goes back once it is dropped.
    drop(bomb);
    vm.collect_garbage();
    assert!(vm.memory_used(9) < MIB, "after the drop: {}", vm.memory_used(9));
}

#[test]
fn a_pcall_cannot_keep_a_task_over_its_limit_alive() {
    let vm = Vm::new().unwrap();
    let src = r#"
        local ok, err = pcall(function()
            local t = {} for i = 1, 1e7 do t[i] = string.rep("x", 1e5) .. i end
        end)
        print("survived", ok, err)
        while true do pcall(print, "still here") end
    "#;
    let mut task = limited(&vm, src, 10, 32 * MIB);
    let outcome = run(&mut task, Budget::unlimited());
    assert!(matches!(outcome, Outcome::Killed(KillReason::MemoryLimit { .. })), "{outcome:?}");
    assert!(!String::from_utf8_lossy(&task.take_output()).contains("still here"));
}

#[test]
fn one_allocation_past_the_limit_fails_before_it_happens() {
    let vm = Vm::new().unwrap();
    let mut task = limited(&vm, "local s = string.rep('x', 2^30) print(#s)", 11, 16 * MIB);
    let outcome = run(&mut task, Budget::unlimited());
    assert!(matches!(outcome, Outcome::Killed(KillReason::MemoryLimit { .. })), "{outcome:?}");
    assert!(vm.memory_used(11) < 16 * MIB, "the gigabyte was never allocated: {}", vm.memory_used(11));
}

#[test]
fn tasks_under_their_limits_run_as_without_them() {
    let src = "local t = {} for i = 1, 5000 do t[i] = tostring(i) .. string.rep('y', i % 50) end print(#t, t[4999])";
    let vm = Vm::new().unwrap();
    let mut free = vm.spawn(&Script::compile(src, "=free").unwrap()).unwrap();
    let mut capped = limited(&vm, src, 12, 16 * MIB);
    capped.set_limits(TaskLimits { max_ticks: Some(10_000_000), max_time: Some(Duration::from_secs(60)) });
    assert_eq!(run(&mut free, Budget::ticks(100)), run(&mut capped, Budget::ticks(100)));
    assert_eq!(free.take_output(), capped.take_output());
}

/// A task holding about 8 MiB of strings, captured at its yield.
fn big_state() -> Vec<u8> {
    let vm = Vm::new().unwrap();
    let src = "local t = {} for i = 1, 400 do t[i] = string.rep('z', 20000) .. i end coroutine.yield() print(#t)";
    let mut task = vm.spawn(&Script::compile(src, "=big").unwrap()).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    encode(&capture(&task).unwrap())
}

#[test]
fn restore_refuses_a_state_that_cannot_fit_before_building_anything() {
    let bytes = big_state();
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let needed = estimate_memory(verified.view());
    assert!((7 * MIB..9 * MIB).contains(&needed), "estimate {needed}");
    let vm = Vm::new().unwrap();
    let before = vm.memory_used(13);
    let options = RestoreOptions { memory_category: 13, memory_limit: Some(4 * MIB) };
    let err = restore(&vm, &verified, options).err().expect("refused");
    assert!(
        matches!(err, RestoreError::MemoryLimit { needed: n, limit, .. } if n == needed && limit == 4 * MIB),
        "{err}"
    );
    assert_eq!(vm.memory_used(13), before, "nothing was built");

    // The validator refuses it as well when the host gives it the limit and the VM's sizes.
    let limits = Limits { max_memory: Some(4 * MIB), object_sizes: Some(memory_model()), ..Limits::default() };
    let report = validate(&bytes, &limits, &SourceCatalog::embedded_only()).expect_err("refused");
    assert_eq!(report.codes(), vec![amber_validator::Code::StateTooLarge]);

    // With room, it restores, charged to the category, and goes on under the limit.
    let options = RestoreOptions { memory_category: 13, memory_limit: Some(12 * MIB) };
    let mut task = restore(&vm, &verified, options).unwrap();
    let used = vm.memory_used(13) - before;
    assert!(used >= needed && used < needed + MIB, "charged {used}, estimated {needed}");
    assert!(matches!(run(&mut task, Budget::unlimited()), Outcome::Finished(_)));
    assert_eq!(task.take_output(), b"400\n");
}

#[test]
fn a_restored_task_is_killed_at_its_limit_too() {
    let vm = Vm::new().unwrap();
    let src = "coroutine.yield() local t = {} for i = 1, 1e7 do t[i] = string.rep('x', 1e5) .. i end";
    let mut task = vm.spawn(&Script::compile(src, "=later").unwrap()).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let bytes = encode(&capture(&task).unwrap());
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let vm2 = Vm::new().unwrap();
    let mut restored =
        restore(&vm2, &verified, RestoreOptions { memory_category: 14, memory_limit: Some(20 * MIB) }).unwrap();
    let outcome = run(&mut restored, Budget::ticks(100));
    assert!(
        matches!(outcome, Outcome::Killed(KillReason::MemoryLimit { limit, .. }) if limit == 20 * MIB),
        "{outcome:?}"
    );
}

#[test]
fn a_total_tick_budget_ends_a_runaway_loop_exactly() {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile("while true do end", "=spin").unwrap()).unwrap();
    task.set_limits(TaskLimits { max_ticks: Some(1_000_000), max_time: None });
    let outcome = run(&mut task, Budget::unlimited());
    assert_eq!(outcome, Outcome::Killed(KillReason::TickLimit { limit: 1_000_000 }));
    assert_eq!(task.stats().ticks, 1_000_000);
}

#[test]
fn a_wall_clock_budget_ends_a_runaway_loop() {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile("while true do end", "=spin").unwrap()).unwrap();
    let limit = Duration::from_millis(200);
    task.set_limits(TaskLimits { max_ticks: None, max_time: Some(limit) });
    let outcome = run(&mut task, Budget::unlimited());
    assert_eq!(outcome, Outcome::Killed(KillReason::TimeLimit { limit }));
    assert!(task.run_time() >= limit, "ran {:?}", task.run_time());
    // The other task of the VM is fine.
    let mut other = vm.spawn(&Script::compile("print(1)", "=other").unwrap()).unwrap();
    assert!(matches!(run(&mut other, Budget::unlimited()), Outcome::Finished(_)));
}

#[test]
fn budgets_cut_slices_without_changing_what_the_host_sees() {
    // The visible pre-emptions of a slice budget stay where they were: every 1000 ticks.
    let vm = Vm::new().unwrap();
    let src = "local s = 0 for i = 1, 20000 do s += i end print(s)";
    let mut task = vm.spawn(&Script::compile(src, "=cut").unwrap()).unwrap();
    task.set_limits(TaskLimits { max_ticks: None, max_time: Some(Duration::from_secs(60)) });
    let mut preemptions = 0;
    loop {
        let before = task.stats().ticks;
        match task.resume(Budget::ticks(1000)).unwrap() {
            Outcome::Preempted => {
                preemptions += 1;
                assert_eq!(task.stats().ticks - before, 1000);
            }
            Outcome::Finished(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(task.stats().preemptions, preemptions);
    assert_eq!(task.take_output(), b"200010000\n");
}
