//! Foundation 4: table iteration survives persist and restore. Each script is pre-empted at every
//! tick; at each point the task is captured, the original keeps running to its end, and a copy
//! restored in another VM must produce exactly the same remaining output (visiting exactly the
//! keys not yet visited, in the same order, none twice). The oracle is the original task itself,
//! because tables keyed by address iterate in an address-dependent order that differs between
//! two fresh runs. For the same reason each script builds its tables first and then calls
//! `coroutine.yield()`: the points checked are the ones after that, where every table being
//! traversed was captured (a table built after a restore iterates in that VM's own order, as a
//! table of a fresh run does).

mod common;

use amber_luau::*;
use amber_validator::{Limits, encode, validate};
use common::run_to_preemption;

fn rest_of(task: &mut Task) -> String {
    loop {
        match task.resume(Budget::ticks(5)).unwrap() {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            Outcome::Finished(_) => break,
            other => panic!("{other:?}"),
        }
    }
    String::from_utf8(task.take_output()).unwrap()
}

fn persist(task: &Task) -> Task {
    let bytes = encode(&capture(task).unwrap());
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    restore(&Vm::new().unwrap(), &verified, RestoreOptions::default()).unwrap()
}

/// Checks every pre-emption point; returns (points checked, restores that needed an order).
fn check_every_point(src: &str) -> (u64, usize) {
    let script = Script::compile(src, "=iter").unwrap();
    let mut k = 1;
    let mut ordered = 0;
    loop {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&script).unwrap();
        // Setup: run to the script's yield (its tables are built).
        assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)), "scripts yield after setup");
        if !run_to_preemption(&mut task, k) {
            return (k - 1, ordered);
        }
        task.take_output();
        let mut copy = persist(&task);
        ordered += usize::from(copy.explicit_orders() > 0);
        let want = rest_of(&mut task);
        let got = rest_of(&mut copy);
        assert_eq!(got, want, "restored at pre-emption {k}");
        k += 1;
    }
}

#[test]
fn string_keyed_hash_tables() {
    let (points, ordered) = check_every_point(
        r#"
        local t = {}
        for i = 1, 12 do t["key" .. i] = i * i end
        coroutine.yield()
        local n = 0
        for k, v in pairs(t) do n += 1 print(k, v) end
        print(n)
        "#,
    );
    assert!(points > 12);
    assert_eq!(ordered, 0, "a table keyed by strings comes back at its own node positions");
}

const ADDRESS_KEYED: &str = r#"
local names = {}
local t = {}
for i = 1, 10 do local k = {id = i} names[k] = "table " .. i t[k] = i end
for i = 1, 5 do local f = function() return i end names[f] = "function " .. i t[f] = -i end
for i = 1, 4 do local u = newproxy() names[u] = "proxy " .. i t[u] = i * 10 end
for i = 1, 3 do local c = coroutine.create(function() end) names[c] = "thread " .. i t[c] = i * 100 end
coroutine.yield()
local visited, sum = 0, 0
for k, v in pairs(t) do visited += 1 sum += v print(names[k], v) end
print(visited, sum)
"#;

#[test]
fn tables_keyed_by_tables_functions_userdata_and_coroutines() {
    let (points, ordered) = check_every_point(ADDRESS_KEYED);
    assert!(points > 22);
    assert!(ordered > 0, "restoring address-keyed tables needed explicit orders");
}

#[test]
fn mixed_array_and_hash_parts_with_holes() {
    check_every_point(
        r#"
        local t = {1, 2, nil, 4, nil, 6, x = "x", y = "y", [2.5] = "half", [true] = "yes"}
        t[{}] = "a table"
        coroutine.yield()
        for k, v in pairs(t) do print(type(k), type(k) == "table" and "?" or k, v) end
        for i, v in ipairs(t) do print("ipairs", i, v) end
        "#,
    );
}

#[test]
fn nil_ing_the_current_key_and_overwriting_values_inside_the_loop() {
    check_every_point(
        r#"
        local keys = {}
        local t = {}
        for i = 1, 8 do local k = {i} keys[k] = i t[k] = i t["s" .. i] = i end
        coroutine.yield()
        for k, v in pairs(t) do
            if type(k) == "table" and k[1] % 2 == 0 then t[k] = nil end
            if type(k) == "string" then t[k] = v * 100 end
        end
        local n, s = 0, 0
        for k, v in pairs(t) do n += 1 s += v end
        print(n, s)
        "#,
    );
}

#[test]
fn next_by_hand_across_a_restore() {
    check_every_point(
        r#"
        local t = {}
        for i = 1, 6 do t[{i}] = i t[i * 10] = i end
        coroutine.yield()
        local k, v = next(t)
        local total = 0
        while k ~= nil do
            total += v
            if type(k) == "table" then t[k] = nil end -- next(t, k) after t[k] = nil still works
            k, v = next(t, k)
        end
        print(total)
        "#,
    );
}

#[test]
fn pairs_with_an_iter_metamethod_and_nested_loops_over_one_table() {
    check_every_point(
        r#"
        local data = {}
        for i = 1, 5 do data[{i}] = i end
        local wrapper = setmetatable({}, {__iter = function() return next, data end})
        coroutine.yield()
        for k, v in wrapper do print("iter", v) end
        local pairs_seen = 0
        for a, x in pairs(data) do
            for b, y in pairs(data) do pairs_seen += x * y end
        end
        print(pairs_seen)
        "#,
    );
}

#[test]
fn a_table_restored_twice_keeps_its_order() {
    let script = Script::compile(ADDRESS_KEYED, "=twice").unwrap();
    for k in [3, 10, 17] {
        let vm = Vm::new().unwrap();
        let mut task = vm.spawn(&script).unwrap();
        assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
        for _ in 0..k {
            assert_eq!(task.resume(Budget::ticks(1)).unwrap(), Outcome::Preempted);
        }
        task.take_output();
        let mut once = persist(&task);
        // Run the copy a little, then persist it again and restore that.
        for _ in 0..5 {
            once.resume(Budget::ticks(1)).unwrap();
        }
        once.take_output();
        let mut twice = persist(&once);
        let want = rest_of(&mut once);
        assert_eq!(rest_of(&mut twice), want, "k = {k}");
        let original = rest_of(&mut task);
        assert_eq!(original.lines().last(), want.lines().last(), "same totals");
    }
}

#[test]
fn adding_a_key_drops_the_order_and_still_visits_every_key_once() {
    // Documented behaviour: a new key ends the captured order (Luau leaves traversal undefined
    // when keys are added); the table then iterates in its node order, each key exactly once.
    let src = r#"
        local t = {}
        for i = 1, 30 do t[{i}] = i end
        coroutine.yield()
        t[{99}] = 99
        local seen, sum = 0, 0
        for k, v in pairs(t) do seen += 1 sum += v end
        print(seen, sum)
    "#;
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=add").unwrap()).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let mut copy = persist(&task);
    assert!(copy.explicit_orders() > 0);
    assert_eq!(rest_of(&mut copy), "31\t564\n");
}

#[test]
fn a_table_with_an_explicit_order_behaves_like_any_other() {
    let src = r#"
        local t = {10, 20, 30}
        local keys = {}
        for i = 1, 40 do local k = {i} keys[i] = k t[k] = i end
        coroutine.yield()
        -- lookups, length, table functions
        local ok = true
        for i = 1, 40 do ok = ok and t[keys[i]] == i end
        print(ok, #t, rawlen(t), t[2])
        table.insert(t, 40)
        print(#t, table.remove(t), table.concat({t[1], t[2], t[3]}, ","))
        -- iteration order survives clone; freeze keeps it readable
        local a, b = {}, {}
        local c = table.clone(t)
        for k, v in pairs(t) do a[#a + 1] = v end
        for k, v in pairs(c) do b[#b + 1] = v end
        print(table.concat(a, " ") == table.concat(b, " "), #a)
        table.freeze(c)
        print(table.isfrozen(c), pcall(function() c[keys[1]] = 0 end))
        local n = 0
        for k, v in pairs(c) do n += 1 end
        print(n)
        -- next by hand, then clear
        local k, v = next(t)
        local m = 0
        while k do m += 1 k, v = next(t, k) end
        table.clear(t)
        print(m, next(t))
        t[keys[1]] = "again"
        print(t[keys[1]])
    "#;
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=like").unwrap()).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let mut copy = persist(&task);
    assert!(copy.explicit_orders() > 0, "the test needs a table that carries an order");
    let want = rest_of(&mut task);
    assert_eq!(rest_of(&mut copy), want);
    assert!(want.starts_with("true\t3\t3\t20\n4\t40\t10,20,30\ntrue\t43\ntrue\tfalse"), "{want}");
}
