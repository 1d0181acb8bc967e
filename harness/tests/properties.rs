//! Property suites of the differential harness (case counts are modest by default; raise them
//! with PROPTEST_CASES):
//! - random value graphs built by a script, captured and restored, have equal state digests;
//! - random persist points over corpus scripts agree with fresh runs;
//! - random terminating programs agree fresh vs persisted at random points.

use amber_harness::generators::programs::Program;
use amber_harness::generators::{self, Schedule};
use amber_harness::oracles::{self, first_difference};
use amber_harness::runner::{self, Quiet};
use amber_luau::{Budget, Outcome, Script, Vm};
use proptest::prelude::*;
use std::path::PathBuf;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

fn amber() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amber"))
}

/// Fresh trace vs a run persisted at a fraction of its pre-emption points (the harness oracle).
fn agrees_when_persisted(source: &str, fraction: f64) -> Result<(), TestCaseError> {
    oracles::trace::persisted_runs_agree(source, &[(fraction.clamp(0.0, 1.0) * 255.0) as u8])
        .map_err(TestCaseError::fail)
}

// ------------------------------------------------------------------------------------------
// Random value graphs.

#[derive(Debug, Clone)]
enum Node {
    Number(i32),
    Text(u8),
    Vector(i8, i8, i8),
    Table(Vec<(Key, usize)>),
    Closure(usize),
    Buffer(u8),
    Coroutine(usize),
    Boolean(bool),
}

#[derive(Debug, Clone)]
enum Key {
    Index(u8),
    Name(u8),
    Node(usize),
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        any::<i32>().prop_map(Node::Number),
        any::<u8>().prop_map(Node::Text),
        (any::<i8>(), any::<i8>(), any::<i8>()).prop_map(|(a, b, c)| Node::Vector(a, b, c)),
        proptest::collection::vec(
            (
                prop_oneof![
                    any::<u8>().prop_map(Key::Index),
                    any::<u8>().prop_map(Key::Name),
                    any::<usize>().prop_map(Key::Node)
                ],
                any::<usize>()
            ),
            0..6
        )
        .prop_map(Node::Table),
        any::<usize>().prop_map(Node::Closure),
        any::<u8>().prop_map(Node::Buffer),
        any::<usize>().prop_map(Node::Coroutine),
        any::<bool>().prop_map(Node::Boolean),
    ]
}

/// A script that builds the graph in globals (later nodes refer to earlier ones, and table
/// entries to any node, so cycles appear), then yields.
fn graph_script(nodes: &[Node]) -> String {
    let mut s = String::from("local n = {}\n");
    let n = nodes.len().max(1);
    for (i, node) in nodes.iter().enumerate() {
        let earlier = |r: usize| if i == 0 { "0".to_string() } else { format!("n[{}]", r % i + 1) };
        let line = match node {
            Node::Number(x) => format!("n[{}] = {}", i + 1, f64::from(*x) / 7.0),
            Node::Text(t) => format!("n[{}] = string.rep('s{}', {})", i + 1, t, t % 5),
            Node::Vector(a, b, c) => format!("n[{}] = vector.create({a}, {b}, {c})", i + 1),
            Node::Table(_) => format!("n[{}] = {{}}", i + 1),
            Node::Closure(r) => format!("do local up = {} n[{}] = function() return up end end", earlier(*r), i + 1),
            Node::Buffer(b) => {
                format!("n[{}] = buffer.create({}) buffer.writeu8(n[{}], 0, {b})", i + 1, 1 + b % 7, i + 1)
            }
            Node::Coroutine(r) => format!(
                "n[{}] = coroutine.create(function(x) coroutine.yield(x) return {} end) coroutine.resume(n[{}], {i})",
                i + 1,
                earlier(*r),
                i + 1
            ),
            Node::Boolean(b) => format!("n[{}] = {b}", i + 1),
        };
        s += &line;
        s.push('\n');
    }
    for (i, node) in nodes.iter().enumerate() {
        if let Node::Table(entries) = node {
            for (k, v) in entries {
                let key = match k {
                    Key::Index(x) => format!("{}", 1 + x % 8),
                    Key::Name(x) => format!("'k{x}'"),
                    Key::Node(r) => format!("n[{}]", r % n + 1),
                };
                s += &format!("if {key} ~= nil and {key} == {key} then n[{}][{key}] = n[{}] end\n", i + 1, v % n + 1);
            }
        }
    }
    s += "graph = n\ncoroutine.yield()\nprint(#graph)\n";
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(16)))]

    #[test]
    fn random_value_graphs_restore_with_equal_digests(nodes in proptest::collection::vec(node(), 1..24)) {
        let source = graph_script(&nodes);
        let script = Script::compile(&source, "=graph").map_err(|e| TestCaseError::fail(format!("{e}\n{source}")))?;
        let vm = Vm::deterministic().unwrap();
        let mut task = vm.spawn(&script).unwrap();
        let first = task.resume(Budget::unlimited()).unwrap();
        prop_assert!(matches!(first, Outcome::Yielded(_)), "{first:?}\n{source}");
        let before = runner::end_digest(&task);
        let (_bytes, _vm2, restored) = runner::persist(&task).map_err(|e| TestCaseError::fail(format!("{e}\n{source}")))?;
        prop_assert_eq!(runner::end_digest(&restored), before, "{}", source);
    }

    #[test]
    fn random_points_of_corpus_scripts_agree(which in 0usize..1000, fraction in 0.0f64..1.0) {
        // The small corpus scripts (the CPU-heavy ones are covered by `amber check`).
        let scripts: Vec<PathBuf> = generators::discover_scripts(&[generators::default_corpus_dir()]).unwrap().into_iter()
            .filter(|p| std::fs::metadata(p).map(|m| m.len() < 2500).unwrap_or(false)
                && !p.file_name().unwrap().to_string_lossy().starts_with("cpu_")
                && !p.file_name().unwrap().to_string_lossy().contains("large")
                && !p.file_name().unwrap().to_string_lossy().contains("long_loop"))
            .collect();
        let path = &scripts[which % scripts.len()];
        let source = std::fs::read_to_string(path).unwrap();
        agrees_when_persisted(&source, fraction)?;
    }
}

// ------------------------------------------------------------------------------------------
// Random terminating programs (generators::programs, driven by random bytes).

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(24)))]

    #[test]
    fn random_programs_agree_fresh_vs_persisted(bytes in proptest::collection::vec(any::<u8>(), 16..256), fraction in 0.0f64..1.0) {
        agrees_when_persisted(&Program::from_bytes(&bytes).source(), fraction)?;
    }
}

/// The generators make programs with real work in them (many pre-emption points), and the
/// oracle sees a difference when there is one.
#[test]
fn generated_programs_have_points_and_the_oracle_is_not_blind() {
    let mut rng = generators::SplitMix(7);
    let mut total_points = 0;
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..128).map(|_| rng.next_u64() as u8).collect();
        let source = Program::from_bytes(&bytes).source();
        let script = Script::compile(&source, "=prop").unwrap();
        total_points += runner::run_script(&script, Schedule::Fresh, &mut Quiet).unwrap().counts.ticks;
    }
    assert!(total_points > 200, "{total_points}");
    let a =
        runner::run_script(&Script::compile("print(1) x = {1}", "=a").unwrap(), Schedule::Fresh, &mut Quiet).unwrap();
    let b =
        runner::run_script(&Script::compile("print(1) x = {2}", "=b").unwrap(), Schedule::Fresh, &mut Quiet).unwrap();
    assert!(first_difference(&a.trace, &b.trace).is_some(), "the end-state digest tells x = {{1}} from x = {{2}}");
}

/// A persist point past the script's end is not persisted at; the run still reports how the
/// script really ended (its returned values, or its error), as a fresh run does.
#[test]
fn a_persist_point_past_the_end_reports_the_real_ending() {
    for source in [
        "local s = 0 for i = 1, 50 do s += i end return s, 'done'",
        "local t = {} for i = 1, 50 do t[i] = i end error('boom')",
    ] {
        let script = Script::compile(source, "=past_end").unwrap();
        let fresh = runner::run_script(&script, Schedule::Fresh, &mut Quiet).unwrap();
        let points = fresh.counts.ticks;
        // Points 1..=points+5: the last five cannot be reached.
        let reports =
            runner::run_persisting(&script, Schedule::Exhaustive { max: 3000 }, points + 5, &amber()).unwrap();
        assert_eq!(reports.len() as u64, points + 5);
        for r in &reports {
            assert_eq!(first_difference(&fresh.trace, &r.trace), None, "{source}");
        }
    }
}
