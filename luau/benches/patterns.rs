//! Pattern-matching speed: Amber's pre-emptible matcher (`cpp/amber_match.cpp`) against Luau's
//! own `lstrlib` matcher, on the same workloads in one plain Luau state ([`MatcherLab`]), best
//! of 9 rounds each. Prints the ratio (Luau's time / Amber's: 1.0 is parity, above is faster);
//! asserts nothing.
//!
//!     cargo bench -p amber-luau --bench patterns

use amber_luau::MatcherLab;

const WORKLOADS: &[(&str, &str)] = &[
    ("find a rare pattern in 1 MB", r#"return lib.find(text, "z%d%d%d")"#),
    ("match with backtracking", r#"return lib.match(text, "(%d+);key5x=(%d+)9;")"#),
    ("gsub %w+ -> <%0> over 1 MB", r#"local r, n = lib.gsub(text, "%w+", "<%0>") return n"#),
    ("gsub with a function", r#"local r, n = lib.gsub(text, "(%a+)=", function(w) return #w end) return n"#),
    ("gmatch key=value pairs", r#"local n = 0 for k, v in lib.gmatch(text, "(%a+)=(%d+)") do n += 1 end return n"#),
    ("find plain", r#"return lib.find(text, "zzzz", 1, true)"#),
    (
        "many short finds",
        r#"local n = 0 for i = 1, 200000 do if lib.find(words[i % 100 + 1], "^%a+%d?$") then n += 1 end end return n"#,
    ),
];

const SETUP: &str = r#"
local parts = {}
for i = 1, 60000 do parts[i] = "key" .. (i % 97) .. "x=" .. i .. ";" end
text = table.concat(parts)
words = {}
for i = 1, 100 do words[i] = string.rep("w", i % 13 + 1) .. (i % 10) end
return tostring(#text)
"#;

fn best_seconds(lab: &mut MatcherLab, lib: &str, body: &str, rounds: u32) -> f64 {
    let src = format!(
        "local lib = {lib} local clock = os.clock local best = math.huge
         for round = 1, {rounds} do local t0 = clock(); (function() {body} end)(); best = math.min(best, clock() - t0) end
         return tostring(best)"
    );
    let out = lab.eval(&src).unwrap_or_else(|e| panic!("{lib}: {}", String::from_utf8_lossy(&e)));
    String::from_utf8_lossy(&out).parse().expect("a time")
}

/// `AMBER_BENCH_ONLY=text` runs the workloads whose name contains it, and `AMBER_BENCH_ROUNDS=1`
/// one round of each: with both, `valgrind --tool=callgrind` counts the instructions of one
/// workload, a figure the machine's noise does not move.
fn main() {
    let only = std::env::var("AMBER_BENCH_ONLY").unwrap_or_default();
    let rounds: u32 = std::env::var("AMBER_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(9);
    let mut lab = MatcherLab::new().expect("a lab state");
    let len = lab.eval(SETUP).expect("setup");
    println!("subject: {} bytes; Luau's matcher vs Amber's, best of {rounds} rounds", String::from_utf8_lossy(&len));
    println!("{:<32} {:>10} {:>10} {:>8}", "workload", "Luau", "Amber", "ratio");
    let mut product = 1.0;
    let mut ran = 0;
    for (name, body) in WORKLOADS.iter().filter(|(name, _)| name.contains(only.as_str())) {
        ran += 1;
        let stock = best_seconds(&mut lab, "string", body, rounds);
        let amber = best_seconds(&mut lab, "amber_string", body, rounds);
        let ratio = stock / amber;
        product *= ratio;
        println!("{name:<32} {:>8.2}ms {:>8.2}ms {ratio:>7.2}x", stock * 1e3, amber * 1e3);
    }
    println!("geometric mean ratio: {:.2}x", product.powf(1.0 / f64::from(ran.max(1))));
}
