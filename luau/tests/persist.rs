//! Capture and restore: persisting in the middle and resuming in a fresh VM must give exactly
//! the output of an uninterrupted run.

mod common;

use amber_luau::*;
use amber_validator::{Limits, encode, validate};
use common::run_to_preemption;

fn fresh(src: &str) -> (String, Outcome) {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=t").unwrap()).unwrap();
    loop {
        match task.resume(Budget::unlimited()).unwrap() {
            Outcome::Yielded(_) => continue,
            o => return (String::from_utf8(task.take_output()).unwrap(), o),
        }
    }
}

/// Runs `src` pre-empted at every tick; at the `k`-th pre-emption persists through bytes,
/// validates, restores into a fresh VM and runs to the end there.
fn persisted(src: &str, k: u64) -> Option<(String, Outcome, Vec<u8>)> {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=t").unwrap()).unwrap();
    if !run_to_preemption(&mut task, k) {
        return None;
    }
    let before = String::from_utf8(task.take_output()).unwrap();
    let snapshot = capture(&task).unwrap_or_else(|e| panic!("capture at {k}: {e}"));
    let bytes = encode(&snapshot);
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only())
        .unwrap_or_else(|r| panic!("validate at {k}: {r}"));
    let vm2 = Vm::new().unwrap();
    let mut task2 =
        restore(&vm2, &verified, RestoreOptions::default()).unwrap_or_else(|e| panic!("restore at {k}: {e}"));
    let end = loop {
        match task2.resume(Budget::ticks(3)).unwrap() {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            o => break o,
        }
    };
    Some((before + &String::from_utf8(task2.take_output()).unwrap(), end, bytes))
}

fn check_every_point(src: &str) -> u64 {
    let (want, want_end) = fresh(src);
    let mut k = 1;
    while let Some((got, end, _)) = persisted(src, k) {
        assert_eq!(got, want, "persisted at pre-emption {k}");
        assert_eq!(end, want_end, "persisted at pre-emption {k}");
        k += 1;
    }
    k - 1
}

#[test]
fn a_simple_loop_round_trips_at_every_point() {
    let n = check_every_point("local s = 0 for i = 1, 10 do s += i print(i, s) end return s");
    assert!(n > 10);
}

const VALUES: &str = r#"
local nan, negzero, inf = 0/0, -0.0, math.huge
local v = vector.create(1.5, -2, 3)
local bin = "a\0b\255c"
local long = string.rep("xyz", 5000)
local buf = buffer.create(8)
buffer.writeu32(buf, 0, 0xdeadbeef)
local proxy = newproxy(true)
getmetatable(proxy).__tostring = function() return "proxy!" end
getmetatable(proxy).__index = function(_, k) return "field " .. k end
local t = {1, 2, nil, 4, x = "y", [2.5] = true}
for i = 1, 3 do
    print(nan ~= nan, 1/negzero, inf, -inf, v, #bin, bin:byte(2), bin:byte(4), #long, long:sub(-3))
    print(buffer.readu32(buf, 0), tostring(proxy), proxy.abc, t[1], t[4], t.x, t[2.5], #t)
    buffer.writeu8(buf, 4, i)
    print(buffer.readu8(buf, 4))
end
"#;

#[test]
fn every_value_type_round_trips() {
    check_every_point(VALUES);
}

const C_CLOSURES: &str = r#"
local gen = coroutine.wrap(function() for i = 1, 4 do coroutine.yield(i * 10) end end)
local words = string.gmatch("alpha beta gamma delta", "%a+")
local codes = {}
for _, c in utf8.codes("héllo") do codes[#codes + 1] = c end
local nxt, tbl, start = pairs({a = 1})
local inext, arr, zero = ipairs({5, 6, 7})
print(#codes, codes[2], type(nxt), zero)
for i = 1, 4 do
    print(gen(), words(), inext(arr, i - 1))
end
print(nxt(tbl, start))
"#;

#[test]
fn c_closures_made_at_run_time_round_trip() {
    check_every_point(C_CLOSURES);
}

const TABLES: &str = r#"
local base = {greet = function(self) return "hi " .. self.name end}
base.__index = base
local obj = setmetatable({name = "ada"}, base)
local selfmeta = {}
setmetatable(selfmeta, selfmeta)
selfmeta.__index = function(_, k) return k .. "!" end
local frozen = table.freeze({1, 2, 3})
local holes = {1, nil, 3, nil, 5}
local mixed = {10, 20, 30, a = 1, b = 2}
local cycle = {}
cycle.self = cycle
local key = {}
local bykey = {[key] = "table key", [print] = "function key"}
for i = 1, 3 do
    print(obj:greet(), selfmeta.zz, table.isfrozen(frozen), pcall(function() frozen[1] = 0 end))
    print(holes[1], holes[2], holes[5], #mixed, mixed.a, cycle.self.self == cycle, bykey[key], bykey[print])
    mixed[#mixed + 1] = i
    holes[2] = i
end
print(#mixed, mixed[4], mixed[6], holes[2])
"#;

#[test]
fn tables_round_trip() {
    check_every_point(TABLES);
}

const UPVALUES: &str = r#"
local function counter()
    local n = 0
    return function() n += 1 return n end, function() return n end
end
local inc, get = counter()
local fixed = 42
local byvalue = function() return fixed end
local fib
fib = function(x) if x < 2 then return x end return fib(x - 1) + fib(x - 2) end
local outer = 0
local function setter(v) outer = v end
for i = 1, 4 do
    inc()
    setter(i * 100)
    print(get(), byvalue(), fib(8), outer)
end
local co = coroutine.create(function()
    local shared = 1
    local a = function() shared += 1 return shared end
    local b = function() return shared end
    coroutine.yield(a, b)
    shared += 10
    coroutine.yield(b())
    return shared
end)
local _, a, b = coroutine.resume(co)
print(a(), b(), a(), b())
print(coroutine.resume(co))
print(a(), b())
print(coroutine.resume(co))
"#;

#[test]
fn closures_and_upvalues_round_trip_and_stay_shared() {
    check_every_point(UPVALUES);
}

const THREADS: &str = r#"
local notstarted = coroutine.create(function(x) return x * 2 end)
local dead = coroutine.create(function() return 1 end)
coroutine.resume(dead)
local errored = coroutine.create(function() error({code = 7}) end)
print(select(2, coroutine.resume(errored)).code)
local deep = coroutine.create(function()
    local function d(n) if n == 0 then coroutine.yield("bottom") return 0 end return 1 + d(n - 1) end
    return d(20)
end)
local function iter()
    return coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i, i * i) end end)
end
local inforloop = coroutine.create(function()
    local acc = 0
    for i, sq in iter() do acc += sq coroutine.yield(acc) end
    return acc
end)
local protected = coroutine.create(function()
    local ok, v = pcall(function() local x = coroutine.yield("in pcall") return x .. "!" end)
    local ok2, v2 = xpcall(function() coroutine.yield("in xpcall") error("boom", 0) end, function(e) return "handled " .. e end)
    return ok, v, ok2, v2
end)
print(coroutine.resume(deep))
print(coroutine.resume(protected))
print(coroutine.resume(protected, "resumed"))
for i = 1, 4 do print(coroutine.resume(inforloop)) end
print(coroutine.resume(deep))
print(coroutine.resume(protected))
print(coroutine.resume(notstarted, 21))
print(coroutine.status(dead), coroutine.status(errored), select(2, coroutine.close(errored)).code)
local undelivered = coroutine.create(function() coroutine.yield(1, 2, 3) end)
print(coroutine.resume(undelivered))
local obj = {name = "o"}
function obj:hello(x) return self.name .. x end
for i = 1, 3 do print(obj:hello(i)) end
"#;

#[test]
fn threads_in_every_status_round_trip() {
    check_every_point(THREADS);
}

const NESTED_CHAIN: &str = r#"
local c3 = coroutine.create(function()
    for i = 1, 3 do
        print("c3", i, coroutine.isyieldable(), coroutine.status(coroutine.running()))
        coroutine.yield(i)
    end
    return "c3 done"
end)
local c2 = coroutine.wrap(function()
    while true do
        local ok, v = coroutine.resume(c3)
        print("c2", ok, v, coroutine.status(c3))
        if coroutine.status(c3) == "dead" then return "c2 done" end
        coroutine.yield(v)
    end
end)
local c1 = coroutine.create(function()
    for i = 1, 10 do
        local v = c2()
        print("c1", v)
        if v == "c2 done" then break end
    end
    return "c1 done"
end)
print(coroutine.resume(c1))
"#;

#[test]
fn preempted_resume_chains_round_trip() {
    check_every_point(NESTED_CHAIN);
}

const GLOBALS_AND_RANDOM: &str = r#"
counter = 0
math.randomseed(1234)
local function tick() counter += 1 return math.random(1, 1000000) end
for i = 1, 5 do print(tick(), counter) end
print(math.random())
newglobal = "set late"
print(newglobal, type(string.format), string.format("%d", 7))
"#;

#[test]
fn globals_and_random_state_round_trip() {
    check_every_point(GLOBALS_AND_RANDOM);
}

fn persist_restore_persist(src: &str) {
    for k in [3, 17, 40] {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&Script::compile(src, "=t").unwrap()).unwrap();
        if !run_to_preemption(&mut task, k) {
            continue;
        }
        let a = encode(&capture(&task).unwrap());
        let b = encode(&capture(&task).unwrap());
        assert_eq!(a, b, "capturing twice differs");
        let verified = validate(&a, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
        let vm2 = Vm::new().unwrap();
        let restored = restore(&vm2, &verified, RestoreOptions::default()).unwrap();
        let c = encode(&capture(&restored).unwrap());
        assert_eq!(a, c, "persist -> restore -> persist differs (k = {k})");
    }
}

#[test]
fn persisting_twice_gives_identical_bytes_and_restore_then_persist_too() {
    for src in [VALUES, UPVALUES, THREADS, NESTED_CHAIN, C_CLOSURES, GLOBALS_AND_RANDOM] {
        persist_restore_persist(src);
    }
}

/// TABLES has tables keyed by a table and a function: those keys hash by address, so after a
/// restore they sit elsewhere in the node array; the explicit iteration order (and the layout it
/// remembers) makes the second snapshot identical to the first.
#[test]
fn address_keyed_tables_persist_restore_persist_identically() {
    persist_restore_persist(TABLES);
}

struct Vec2Codec;
impl UserdataCodec for Vec2Codec {
    fn encode(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = b"v2:".to_vec();
        out.extend_from_slice(data);
        Ok(out)
    }
    fn decode(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        payload.strip_prefix(b"v2:").map(<[u8]>::to_vec).ok_or_else(|| "bad payload".to_string())
    }
}

fn vm_with_codec() -> Vm {
    let vm = Vm::new().unwrap();
    vm.register_codec(5, "vec2", std::rc::Rc::new(Vec2Codec));
    vm
}

#[test]
fn userdata_with_a_registered_codec_round_trips() {
    let src = "local t = {point} for i = 1, 5 do print(type(point), typeof(point), t[1] == point, i) end";
    let script = Script::compile(src, "=ud").unwrap();
    let vm = vm_with_codec();
    let mut fresh = vm.spawn(&script).unwrap();
    fresh.set_global_userdata("point", 5, &[1, 2, 3, 4], false).unwrap();
    assert!(matches!(fresh.resume(Budget::unlimited()).unwrap(), Outcome::Finished(_)));
    let want = String::from_utf8(fresh.take_output()).unwrap();
    for k in 1..=8 {
        let vm = vm_with_codec();
        let mut task = vm.spawn(&script).unwrap();
        task.set_global_userdata("point", 5, &[1, 2, 3, 4], false).unwrap();
        let mut seen = 0;
        while seen < k {
            assert_eq!(task.resume(Budget::ticks(1)).unwrap(), Outcome::Preempted);
            seen += 1;
        }
        let snapshot = capture(&task).unwrap();
        assert!(snapshot.objects.iter().any(|o| matches!(o, amber_validator::snapshot::Object::Userdata(_))));
        let bytes = encode(&snapshot);
        let limits = Limits { codecs: vm.codec_names(), ..Limits::default() };
        let verified = validate(&bytes, &limits, &SourceCatalog::embedded_only()).unwrap();
        let vm2 = vm_with_codec();
        let mut restored = restore(&vm2, &verified, RestoreOptions::default()).unwrap();
        assert!(matches!(restored.resume(Budget::unlimited()).unwrap(), Outcome::Finished(_)));
        let got = String::from_utf8(task.take_output()).unwrap() + &String::from_utf8(restored.take_output()).unwrap();
        assert_eq!(got, want, "k = {k}");
    }
    // Restoring into a VM without the codec is refused, naming the object.
    let vm = vm_with_codec();
    let mut task = vm.spawn(&script).unwrap();
    task.set_global_userdata("point", 5, &[9], false).unwrap();
    task.resume(Budget::ticks(1)).unwrap();
    let bytes = encode(&capture(&task).unwrap());
    let limits = Limits { codecs: vm.codec_names(), ..Limits::default() };
    let verified = validate(&bytes, &limits, &SourceCatalog::embedded_only()).unwrap();
    let Err(err) = restore(&Vm::new().unwrap(), &verified, RestoreOptions::default()) else {
        panic!("restored without the codec");
    };
    assert!(matches!(err, RestoreError::Codec { .. }), "{err}");
}

#[test]
fn userdata_without_codec_or_with_destructor_is_a_capture_error_naming_its_path() {
    let script = Script::compile("local keep = {inner = {thing}} for i = 1, 3 do print(i) end", "=ud").unwrap();
    for (with_destructor, needle) in [(false, "no registered codec"), (true, "destructor")] {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&script).unwrap();
        task.set_global_userdata("thing", 7, &[0; 8], with_destructor).unwrap();
        for _ in 0..6 {
            task.resume(Budget::ticks(1)).unwrap();
        }
        let err = capture(&task).unwrap_err();
        assert!(err.reason.contains(needle), "{err}");
        assert!(err.path.starts_with("thread#0") && err.path.contains(" > "), "{err}");
    }
}

#[test]
fn one_snapshot_restored_three_times_gives_independent_tasks() {
    let src =
        "counter = (counter or 0) local t = {} for i = 1, 6 do counter += 1 t[i] = counter print(counter, #t) end";
    let script = Script::compile(src, "=n").unwrap();
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&script).unwrap();
    for _ in 0..9 {
        task.resume(Budget::ticks(1)).unwrap();
    }
    let bytes = encode(&capture(&task).unwrap());
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let vm2 = Vm::new().unwrap();
    let mut copies: Vec<Task> = (0..3).map(|_| restore(&vm2, &verified, RestoreOptions::default()).unwrap()).collect();
    // Interleave them: shared state would show up as diverging counters.
    let mut outputs = vec![String::new(); 3];
    for _ in 0..200 {
        for (c, out) in copies.iter_mut().zip(outputs.iter_mut()) {
            if !c.is_done() {
                c.resume(Budget::ticks(2)).unwrap();
                out.push_str(&String::from_utf8(c.take_output()).unwrap());
            }
        }
    }
    assert!(copies.iter().all(Task::is_done));
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[1], outputs[2]);
    assert!(outputs[0].ends_with("6\t6\n"), "{}", outputs[0]);
}

#[test]
fn restored_tasks_are_charged_to_the_hosts_memory_category() {
    let src = "local t = {} for i = 1, 2000 do t[i] = tostring(i) .. 'x' end coroutine.yield() print(#t)";
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=m").unwrap()).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let bytes = encode(&capture(&task).unwrap());
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let vm2 = Vm::new().unwrap();
    let before = vm2.memory_used(42);
    let mut restored = restore(&vm2, &verified, RestoreOptions { memory_category: 42, memory_limit: None }).unwrap();
    assert!(vm2.memory_used(42) > before + 50_000, "{} -> {}", before, vm2.memory_used(42));
    assert!(matches!(restored.resume(Budget::unlimited()).unwrap(), Outcome::Finished(_)));
    assert_eq!(restored.take_output(), b"2000\n");
}

#[test]
fn a_corrupted_verified_snapshot_fails_to_restore_and_the_vm_stays_usable() {
    use amber_validator::snapshot::{Object, Value};
    use amber_validator::validate::CallFrameKind;
    let src = "local t = {1, 2, 3} local s = 'x' for i = 1, 10 do t[#t + 1] = s .. i end print(#t)";
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=c").unwrap()).unwrap();
    for _ in 0..5 {
        task.resume(Budget::ticks(1)).unwrap();
    }
    let bytes = encode(&capture(&task).unwrap());
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    type Corruption = fn(&mut amber_validator::Verified<amber_validator::Snapshot>);
    fn frame0(v: &mut amber_validator::Verified<amber_validator::Snapshot>, f: fn(&mut amber_validator::CallFrame)) {
        assert!(v.layout(0).is_some(), "the main thread's layout");
        v.tamper_layout(0, |l| f(&mut l.frames[0]));
    }
    let corruptions: Vec<(&str, Corruption)> = vec![
        ("saved pc past the code", |v| {
            frame0(v, |f| {
                if let CallFrameKind::Lua { saved_pc, .. } = &mut f.kind {
                    *saved_pc = 99_999;
                }
            })
        }),
        ("object reference out of range", |v| {
            v.tamper(|s| {
                if let Object::Thread(t) = &mut s.objects[0] {
                    t.stack[1] = Value::Object(1_000_000);
                }
            })
        }),
        ("frame base outside the stack", |v| frame0(v, |f| f.base = 1_000_000)),
        ("HANDLE on a Luau frame", |v| frame0(v, |f| f.flags |= 2)),
        ("the outermost frame without RETURN", |v| frame0(v, |f| f.flags = 0)),
        ("a result count no CALL can ask for", |v| frame0(v, |f| f.nresults = 1 << 20)),
        ("a string where a table is required", |v| {
            v.tamper(|s| {
                let string = s.objects.iter().position(|o| matches!(o, Object::String(_))).unwrap() as u32;
                if let Object::Thread(t) = &mut s.objects[0] {
                    t.globals = Value::Object(string);
                }
            })
        }),
    ];
    let vm2 = Vm::new().unwrap();
    for (name, corrupt) in corruptions {
        let mut bad = verified.clone();
        corrupt(&mut bad);
        let err = restore(&vm2, &bad, RestoreOptions::default());
        assert!(err.is_err(), "{name}: restore accepted a corrupted snapshot");
        // The VM still runs other tasks and restores good snapshots.
        let mut other = vm2.spawn(&Script::compile("return 40 + 2", "=ok").unwrap()).unwrap();
        assert_eq!(
            other.resume(Budget::unlimited()).unwrap(),
            Outcome::Finished(vec![amber_luau::Value::Number(42.0)])
        );
        let mut good = restore(&vm2, &verified, RestoreOptions::default()).unwrap();
        assert!(matches!(good.resume(Budget::unlimited()).unwrap(), Outcome::Finished(_)), "{name}");
    }
}

/// Keys of every kind hashed by contents (long and short strings, integers outside the array,
/// fractions, huge and negative numbers, -0, infinities, booleans, vectors with -0 components),
/// many of them colliding, some deleted and collected: the validator's main positions (R014)
/// must agree with the VM's on every capture, and the restored tables must find every key.
#[test]
fn tables_keyed_by_contents_keep_their_layout() {
    let src = r#"
local t = {}
for i = 1, 300 do
    t["k" .. i] = i
    t[string.rep("long key ", 1 + i % 7) .. i] = -i
    t[i * 0.25] = i
    t[-i * 1000003] = i
    t[vector.create(i, -0, i % 3)] = i
end
t[true], t[false] = 1, 2
t[-0] = "zero"
t[math.huge], t[-math.huge] = "inf", "-inf"
t[2^53] = "big"
for i = 1, 300, 3 do t["k" .. i] = nil end
local arr = {1, 2, 3, 4}
arr[6], arr[7.5], arr.x = 6, 7.5, "x"
for i = 1, 3000 do local _ = { i, tostring(i) } end -- garbage, so the collector runs
local sum = 0
for round = 1, 3 do
    for i = 1, 300 do
        sum += (t["k" .. i] or 0) + (t[i * 0.25] or 0) + (t[vector.create(i, 0, i % 3)] or 0) + (t[-i * 1000003] or 0)
    end
end
print(sum, t[0], t[math.huge], t[-math.huge], t[2^53], t[true], t[false], arr[6], arr[7.5], arr.x)
"#;
    let (want, end) = fresh(src);
    assert!(matches!(end, Outcome::Finished(_)), "{end:?}\n{want}");
    let mut k = 1;
    while let Some((got, _, _)) = persisted(src, k) {
        assert_eq!(got, want, "persisted at pre-emption {k}");
        k += 499;
    }
    assert!(k > 2_000, "the script has pre-emption points to persist at ({k})");
}

/// Forks: one catalog kept for a VM's lifetime compiles and analyses a script once, however many
/// snapshots of it are validated and restored; every restored task is independent.
#[test]
fn forks_share_one_prepared_script() {
    let vm = Vm::new().unwrap();
    let mut task =
        vm.spawn(&Script::compile("local n = 0 while n < 50 do n += 1 end print(n)", "=fork").unwrap()).unwrap();
    assert_eq!(task.resume(Budget::ticks(20)).unwrap(), Outcome::Preempted);
    let bytes = encode(&capture(&task).unwrap());
    let catalog = SourceCatalog::embedded_only();
    let first = validate(&bytes, &Limits::default(), &catalog).unwrap();
    let second = validate(&bytes, &Limits::default(), &catalog).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first.scripts()[0], &second.scripts()[0]), "prepared once, shared");
    let other = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first.scripts()[0], &other.scripts()[0]), "another catalog prepares its own");
    let into = Vm::new().unwrap();
    let mut outputs = Vec::new();
    for v in [&first, &second, &first] {
        let mut t = restore(&into, v, RestoreOptions::default()).unwrap();
        assert!(matches!(t.resume(Budget::unlimited()).unwrap(), Outcome::Finished(_)));
        outputs.push(t.take_output());
    }
    assert!(outputs.iter().all(|o| o == b"50\n"), "{outputs:?}");
}
