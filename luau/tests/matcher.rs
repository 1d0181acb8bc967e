//! Pattern matching pre-empted and persisted mid-match (docs/MATCHER.md): string.find, match,
//! gmatch and gsub break on the scheduler's ticks like Luau code, their state goes into the
//! snapshot, the validator checks it and restore resumes it, with results equal to a run that was
//! never interrupted. Hostile states are refused or, where the validator cannot tell them from a
//! real one, resumed without harm.

mod common;

use amber_luau::*;
use amber_validator::snapshot::{Frame, Object, Snapshot, ThreadStatus, Value};
use amber_validator::{Limits, encode, validate};
use common::run_to_preemption;

/// Long subjects (so that one match takes many steps), every operation, captures, `%b`,
/// back-references, gsub with string, table (`__index` function) and function replacements,
/// and a replacement function that yields.
const SCRIPT: &str = r#"
local s = string.rep("ab(cd)ef ", 300) .. "xyz"
print(s:find("(%b())%s*e(f+)", 10))
print(s:match("^(a.-)%((%w+)%)"))
print(s:find("x(y)z$"))
print(s:match("(%a)%1"), s:match("()(c+)()d"))
local r, n = s:gsub("%((%w-)%)", "[%1]")
print(#r, n, r:sub(1, 30))
local total = 0
for a, b in s:gmatch("(%a+)%((%a*)%)") do total += #a + #b end
print(total)
print((s:gsub("%a+", function(w) return #w end, 50)):sub(1, 60))
local t = setmetatable({}, {__index = function(_, k) return k:upper() end})
print((s:gsub("%a%a", t, 40)):sub(1, 40))
print(("x"):rep(600):find(("x?"):rep(20) .. ("x"):rep(20)))
print(s:find("ef x", 1, true), s:find(".*z"))
local co = coroutine.wrap(function()
    return (s:sub(1, 30):gsub("%a", function(c) coroutine.yield(c) return c:upper() end))
end)
local got = {}
for _ = 1, 100 do
    local v = co()
    if #v > 1 then print(table.concat(got), v) break end
    got[#got + 1] = v
end
"#;

fn fresh(src: &str) -> (String, Outcome) {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=m").unwrap()).unwrap();
    loop {
        match task.resume(Budget::unlimited()).unwrap() {
            Outcome::Yielded(_) => continue,
            o => return (String::from_utf8(task.take_output()).unwrap(), o),
        }
    }
}

fn finish(task: &mut Task, budget: Budget) -> Outcome {
    loop {
        match task.resume(budget).unwrap() {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            o => return o,
        }
    }
}

/// Whether a capture is suspended inside a C frame on top (a matcher mid-match).
fn mid_match(s: &Snapshot) -> bool {
    s.objects.iter().any(|o| {
        matches!(o, Object::Thread(t) if t.status == ThreadStatus::Preempted && matches!(t.frames.last(), Some(Frame::C)))
    })
}

/// Runs to the `k`-th pre-emption, captures, and returns the output so far and the model.
fn capture_at(src: &str, k: u64) -> Option<(String, Snapshot)> {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=m").unwrap()).unwrap();
    if !run_to_preemption(&mut task, k) {
        return None;
    }
    let out = String::from_utf8(task.take_output()).unwrap();
    Some((out, capture(&task).unwrap_or_else(|e| panic!("capture at {k}: {e}"))))
}

fn resume_bytes(bytes: &[u8], budget: Budget) -> Result<(String, Outcome), String> {
    let verified = validate(bytes, &Limits::default(), &SourceCatalog::embedded_only()).map_err(|r| r.to_string())?;
    let vm = Vm::new().unwrap();
    let mut task = restore(&vm, &verified, RestoreOptions::default()).map_err(|e| e.to_string())?;
    task.set_limits(TaskLimits { max_ticks: Some(5_000_000), max_time: None });
    let end = finish(&mut task, budget);
    Ok((String::from_utf8_lossy(&task.take_output()).into_owned(), end))
}

#[test]
fn matching_preempted_at_every_tick_gives_the_uninterrupted_results() {
    let (want, want_end) = fresh(SCRIPT);
    assert!(matches!(want_end, Outcome::Finished(_)), "{want_end:?}");
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(SCRIPT, "=m").unwrap()).unwrap();
    let end = finish(&mut task, Budget::ticks(1));
    assert_eq!(String::from_utf8(task.take_output()).unwrap(), want);
    assert_eq!(end, want_end);
    assert!(task.stats().preemptions > 10_000, "{} pre-emptions", task.stats().preemptions);
}

#[test]
fn persisted_mid_match_and_restored_the_results_are_the_same() {
    let (want, want_end) = fresh(SCRIPT);
    let mut mid = 0;
    let mut k = 1;
    let mut points = 0;
    while let Some((before, snapshot)) = capture_at(SCRIPT, k) {
        mid += u32::from(mid_match(&snapshot));
        let (after, end) = resume_bytes(&encode(&snapshot), Budget::ticks(7)).unwrap_or_else(|e| panic!("at {k}: {e}"));
        assert_eq!(before + &after, want, "persisted at pre-emption {k}");
        assert_eq!(end, want_end, "persisted at pre-emption {k}");
        points += 1;
        k += 37 + k / 40;
    }
    assert!(points > 100, "{points} points");
    assert!(mid * 2 > points, "only {mid} of {points} captures were mid-match");
}

#[test]
fn a_catastrophic_pattern_is_preempted_and_killed_by_the_tick_budget() {
    let src = r#"print(string.find(("a"):rep(26), ("a?"):rep(26) .. ("a"):rep(26)))"#;
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=c").unwrap()).unwrap();
    task.set_limits(TaskLimits { max_ticks: Some(200_000), max_time: None });
    let end = finish(&mut task, Budget::ticks(1000));
    assert_eq!(end, Outcome::Killed(KillReason::TickLimit { limit: 200_000 }));
    // Pre-empted, not deferred: the match broke at its steps.
    assert!(task.stats().preemptions >= 199, "{} pre-emptions", task.stats().preemptions);
}

/// Every word of every state buffer of mid-match captures, set to values at and around the
/// boundaries the rules care about: each mutant is refused, or resumed to its end without harm
/// (a crash or trap would end this test process).
#[test]
fn hostile_matcher_states_are_refused_or_harmless() {
    let (mut refused, mut accepted, mut states) = (0u32, 0u32, 0u32);
    let mut k = 1;
    while let Some((_, snapshot)) = capture_at(SCRIPT, k) {
        k += 997;
        if !mid_match(&snapshot) {
            continue;
        }
        let buffers: Vec<usize> = snapshot
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Object::Buffer(b) if b.len() >= 52 && b[..4] == [1, 0, 0, 0]))
            .map(|(i, _)| i)
            .collect();
        for &b in &buffers {
            states += 1;
            let Object::Buffer(state) = &snapshot.objects[b] else { unreachable!() };
            let words = state.len() / 4;
            for w in 0..words {
                let old = u32::from_le_bytes(state[4 * w..4 * w + 4].try_into().unwrap());
                for v in [0, 1, 2, 3, 4, 5, 6, 199, 255, 256, 2703, 2704, 0x7fff_ffff, 0xffff_ffff] {
                    let v = if v == 6 {
                        old.wrapping_add(1)
                    } else if v == 5 && old > 0 {
                        old - 1
                    } else {
                        v
                    };
                    if v == old {
                        continue;
                    }
                    let mut m = snapshot.clone();
                    let Object::Buffer(bytes) = &mut m.objects[b] else { unreachable!() };
                    bytes[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
                    match resume_bytes(&encode(&m), Budget::ticks(50)) {
                        Err(_) => refused += 1,
                        Ok(_) => accepted += 1,
                    }
                }
            }
            // Lengths that are not a header and whole frames, or drop the last frame's bytes.
            for cut in [1usize, 4, 16] {
                let mut m = snapshot.clone();
                let Object::Buffer(bytes) = &mut m.objects[b] else { unreachable!() };
                bytes.truncate(bytes.len() - cut);
                let why = resume_bytes(&encode(&m), Budget::ticks(50)).expect_err("a truncated state is refused");
                assert!(why.contains("M002"), "{why}");
            }
        }
    }
    println!("{states} states: {refused} mutants refused, {accepted} accepted and resumed");
    assert!(states >= 3, "{states} mid-match states");
    assert!(refused > accepted, "{refused} refused, {accepted} accepted");
}

/// The state buffer shared with a second slot, and a state slot retyped.
#[test]
fn a_shared_or_missing_state_is_refused() {
    let mut k = 1;
    let (mut shared, mut retyped) = (0, 0);
    while let Some((_, snapshot)) = capture_at(SCRIPT, k) {
        k += 501;
        if !mid_match(&snapshot) {
            continue;
        }
        for (ti, o) in snapshot.objects.iter().enumerate() {
            let Object::Thread(t) = o else { continue };
            if t.status != ThreadStatus::Preempted || !matches!(t.frames.last(), Some(Frame::C)) {
                continue;
            }
            // The state is the one buffer on the stack top's slots.
            let Some(slot) = t.stack.iter().rposition(
                |v| matches!(v, Value::Object(i) if matches!(snapshot.objects[*i as usize], Object::Buffer(_))),
            ) else {
                continue;
            };
            let Value::Object(buf) = t.stack[slot] else { unreachable!() };
            let mut m = snapshot.clone();
            let Object::Thread(mt) = &mut m.objects[ti] else { unreachable!() };
            // A copy in the slot below (gsub's state, find's pattern, the gmatch iterator's
            // function slot): the buffer is referenced twice, or a slot holds the wrong type.
            mt.stack[slot - 1] = Value::Object(buf);
            let why = resume_bytes(&encode(&m), Budget::ticks(50)).expect_err("shared state refused");
            assert!(["M001", "M002", "M003", "T002"].iter().any(|c| why.contains(c)), "{why}");
            shared += 1;

            let mut m = snapshot.clone();
            let Object::Thread(mt) = &mut m.objects[ti] else { unreachable!() };
            mt.stack[slot] = Value::Number(1.0);
            let why = resume_bytes(&encode(&m), Budget::ticks(50)).expect_err("retyped state refused");
            assert!(why.contains("M001") || why.contains("G001"), "{why}");
            retyped += 1;
        }
    }
    assert!(shared >= 3 && retyped >= 3, "{shared} shared, {retyped} retyped");
}
