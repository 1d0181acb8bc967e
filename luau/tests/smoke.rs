use amber_luau::*;

fn run_all(src: &str, ticks: u64) -> (String, Outcome, TaskStats) {
    let vm = Vm::new().unwrap();
    let script = Script::compile(src, "=smoke").unwrap();
    let mut task = vm.spawn(&script).unwrap();
    loop {
        let o = task.resume(Budget::ticks(ticks)).unwrap();
        if o != Outcome::Preempted {
            let out = String::from_utf8(task.take_output()).unwrap();
            return (out, o, task.stats());
        }
    }
}

#[test]
fn smoke() {
    let src = r#"
local function gen(n) return coroutine.wrap(function() for i=1,n do coroutine.yield(i) end end) end
local co3 = coroutine.create(function() for i = 1, 3 do print("c3", i, coroutine.isyieldable(), coroutine.status(coroutine.running())) coroutine.yield(i) end return "done3" end)
local co2 = coroutine.create(function() while true do local ok, v = coroutine.resume(co3) print("c2 got", ok, v, coroutine.status(co3)) if coroutine.status(co3) == "dead" then break end coroutine.yield(v) end return "done2" end)
local co1 = coroutine.create(function() for i=1,10 do local ok, v = coroutine.resume(co2) print("c1 got", ok, v, coroutine.status(co2)) if coroutine.status(co2) == "dead" then break end end end)
coroutine.resume(co1)
for v in gen(3) do print("gen", v) end
print(math.random(1,100))
local ok, e = pcall(function() error({code=1}) end)
print(ok, type(e), e.code)
return 1, "two", nil
"#;
    let (a, oa, sa) = run_all(src, 1);
    let (b, ob, sb) = run_all(src, 1_000_000);
    println!("{a}\n{oa:?} {sa:?}\n{ob:?} {sb:?}");
    assert_eq!(a, b);
    assert_eq!(oa, ob);
}
