//! Reports of fuzz campaigns (`fuzz/campaign.sh`): libFuzzer's status lines, each prefixed by
//! the wall-clock time it was printed at, turned into `reports/fuzz/TARGET.json`, `.md` and an
//! SVG plot of edges covered over time.

use plotters::prelude::*;
use serde_json::json;
use std::path::Path;

/// One libFuzzer status line (`#1234 NEW cov: 567 ft: 890 corp: 12/3Kb ... exec/s: 100`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the campaign started.
    pub at: f64,
    pub execs: u64,
    pub edges: u64,
    pub corpus: u64,
}

fn field(line: &str, name: &str) -> Option<u64> {
    let rest = &line[line.find(name)? + name.len()..];
    let number: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    number.parse().ok()
}

/// libFuzzer's own count of executions from its final statistics
/// (`stat::number_of_executed_runs: N`, printed with `-print_final_stats=1`), which includes the
/// runs after the last status line.
pub fn final_executions(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| field(l, "stat::number_of_executed_runs:"))
}

/// Parses a timestamped log: lines `SECONDS LIBFUZZER-LINE`. Other lines are skipped.
pub fn parse(log: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut start = None;
    for line in log.lines() {
        let Some((time, text)) = line.split_once(' ') else { continue };
        let Ok(time) = time.parse::<f64>() else { continue };
        let start = *start.get_or_insert(time);
        let text = text.trim_start();
        let Some(hash) = text.strip_prefix('#') else { continue };
        let execs: String = hash.chars().take_while(|c| c.is_ascii_digit()).collect();
        let (Ok(execs), Some(edges)) = (execs.parse::<u64>(), field(text, "cov:")) else { continue };
        out.push(Sample { at: time - start, execs, edges, corpus: field(text, "corp:").unwrap_or(0) });
    }
    out
}

/// What a campaign's report says.
#[derive(Debug, Clone)]
pub struct Campaign<'a> {
    pub target: &'a str,
    pub samples: &'a [Sample],
    /// Seconds the fuzzer ran (from the log's first to last line when not given).
    pub seconds: f64,
    /// Executions in all (libFuzzer's final statistics; the last status line's when absent).
    pub executions: Option<u64>,
    /// Files in the minimized corpus.
    pub corpus_files: usize,
    /// Crash, timeout and out-of-memory artifacts left by the run.
    pub crashes: Vec<String>,
    /// How the binary was built (sanitizers, instrumentation).
    pub build: &'a str,
}

/// Writes `TARGET.json`, `TARGET.md` and `TARGET.svg` into `dir`; returns the markdown.
pub fn write(dir: &Path, c: &Campaign<'_>) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let last = c.samples.last().copied().unwrap_or(Sample { at: 0.0, execs: 0, edges: 0, corpus: 0 });
    let seconds = if c.seconds > 0.0 { c.seconds } else { last.at };
    let executions = c.executions.unwrap_or(last.execs).max(last.execs);
    let rate = if seconds > 0.0 { executions as f64 / seconds } else { 0.0 };
    // Edges at each full minute, for the report's table.
    let mut per_minute = Vec::new();
    let mut minute = 0.0;
    for s in c.samples {
        while s.at >= minute {
            per_minute.push((minute / 60.0, s.edges));
            minute += 60.0;
        }
    }
    let doc = json!({
        "target": c.target,
        "seconds": seconds,
        "executions": executions,
        "executions_per_second": rate,
        "edges": last.edges,
        "corpus_files": c.corpus_files,
        "crashes": c.crashes,
        "build": c.build,
        // [seconds, edges] where coverage grew (libFuzzer prints a line per new input).
        "coverage": growth(c.samples).map(|s| json!([(s.at * 10.0).round() / 10.0, s.edges])).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join(format!("{}.json", c.target)), serde_json::to_string_pretty(&doc).unwrap_or_default())?;

    let mut md = format!("# Fuzz campaign: {}\n\n", c.target);
    md += &format!("Build: {}.\n\n", c.build);
    md += &format!(
        "| duration | executions | exec/s | edges covered | corpus (minimized) | crashes |\n|---:|---:|---:|---:|---:|---:|\n| {:.0} s | {} | {:.0} | {} | {} files | {} |\n\n",
        seconds,
        executions,
        rate,
        last.edges,
        c.corpus_files,
        c.crashes.len()
    );
    md += "Edges covered over time:\n\n| minute | edges |\n|---:|---:|\n";
    for (m, e) in &per_minute {
        md += &format!("| {m:.0} | {e} |\n");
    }
    md += &format!("\n![coverage over time]({}.svg)\n", c.target);
    if !c.crashes.is_empty() {
        md += "\nCrashes:\n\n";
        for f in &c.crashes {
            md += &format!("- `{f}`\n");
        }
    }
    std::fs::write(dir.join(format!("{}.md", c.target)), &md)?;
    plot(&dir.join(format!("{}.svg", c.target)), c.target, c.samples, seconds).map_err(std::io::Error::other)?;
    Ok(md)
}

/// The samples at which the edge count grew, and the last one.
fn growth(samples: &[Sample]) -> impl Iterator<Item = &Sample> {
    let mut best = None;
    samples
        .iter()
        .enumerate()
        .filter(move |&(i, s)| {
            let grew = best.is_none_or(|b| s.edges > b);
            best = Some(best.map_or(s.edges, |b: u64| b.max(s.edges)));
            grew || i + 1 == samples.len()
        })
        .map(|(_, s)| s)
}

fn plot(path: &Path, target: &str, samples: &[Sample], seconds: f64) -> Result<(), String> {
    let root = SVGBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = samples.iter().map(|s| s.edges).max().unwrap_or(1).max(1) as f64;
    let bottom = samples.first().map_or(0.0, |s| s.edges as f64) * 0.95;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{target}: edges covered"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds.max(1.0) / 60.0, bottom..top * 1.02)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("minutes").y_desc("edges").draw().map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(samples.iter().map(|s| (s.at / 60.0, s.edges as f64)), &BLUE))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_parsed_and_the_rest_skipped() {
        let log = "100.0 INFO: Seed: 42\n\
                   100.5 #2\tINITED cov: 120 ft: 130 corp: 5/40b exec/s: 0 rss: 30Mb\n\
                   160.5 #4096\tpulse  cov: 300 ft: 310 corp: 9/80b lim: 4 exec/s: 68 rss: 40Mb\n\
                   not a line\n";
        let s = parse(log);
        assert_eq!(s.len(), 2);
        assert_eq!((s[1].execs, s[1].edges, s[1].corpus), (4096, 300, 9));
        assert!((s[1].at - 60.5).abs() < 1e-9);
    }

    #[test]
    fn final_statistics_give_the_execution_count() {
        let log = "1.0 #4096\tpulse  cov: 300 ft: 310 corp: 9/80b exec/s: 68 rss: 40Mb\n\
                   2.0 stat::number_of_executed_runs: 5123\n\
                   2.0 stat::average_exec_per_sec:     70\n";
        assert_eq!(final_executions(log), Some(5123));
        assert_eq!(final_executions("1.0 #2 INITED cov: 1\n"), None);
    }

    #[test]
    fn coverage_series_keeps_growth_and_the_last_sample() {
        let s = |at: f64, edges: u64| Sample { at, execs: 0, edges, corpus: 0 };
        let samples = [s(0.0, 10), s(1.0, 10), s(2.0, 12), s(3.0, 12), s(4.0, 12)];
        let kept: Vec<f64> = growth(&samples).map(|x| x.at).collect();
        assert_eq!(kept, vec![0.0, 2.0, 4.0]);
    }
}
