//! Validates one large state many times, for a profiler: `perf record` on
//! `cargo run --release -p amber-luau --example profile_validate -- table|coroutines|closures`.
//! With a second argument `capture`, captures and encodes it many times instead (callgrind's
//! instruction counts compare two builds of capture where wall clock cannot); with `restore`,
//! validates and restores it into a fresh VM many times.

use amber_luau::{Budget, Outcome, RestoreOptions, Script, SourceCatalog, Vm, capture, restore};
use amber_validator::{Limits, encode, validate};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "table".into());
    let src = match which.as_str() {
        "coroutines" => {
            "local cos = {} local function deep(n) if n == 0 then coroutine.yield() return 0 end return 1 + deep(n - 1) end
             for i = 1, 10000 do local co = coroutine.create(deep) coroutine.resume(co, 20) cos[i] = co end coroutine.yield()"
        }
        "closures" => {
            "local fns = {} for i = 1, 50000 do local shared = i fns[2 * i - 1] = function() shared += 1 return shared end
             fns[2 * i] = function() return shared end end coroutine.yield()"
        }
        _ => {
            "local t = {} for i = 1, 500000 do t[i] = i * 0.5 end for i = 1, 500000 do t['k' .. i] = (i % 3 == 0) and true or i end
             coroutine.yield()"
        }
    };
    let vm = Vm::new().expect("vm");
    let mut task = vm.spawn(&Script::compile(src, "=profile").expect("compiles")).expect("spawn");
    assert!(matches!(task.resume(Budget::unlimited()).expect("runs"), Outcome::Yielded(_)));
    if std::env::args().nth(2).as_deref() == Some("capture") {
        for _ in 0..5 {
            std::hint::black_box(encode(&capture(&task).expect("capture")));
        }
        return;
    }
    let bytes = encode(&capture(&task).expect("capture"));
    if std::env::args().nth(2).as_deref() == Some("restore") {
        let catalog = SourceCatalog::embedded_only();
        for _ in 0..5 {
            let verified = validate(&bytes, &Limits::default(), &catalog).expect("valid");
            let into = Vm::new().expect("vm");
            std::hint::black_box(restore(&into, &verified, RestoreOptions::default()).expect("restores"));
        }
        return;
    }
    for _ in 0..10 {
        std::hint::black_box(validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).expect("valid"));
    }
}
