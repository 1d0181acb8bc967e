//! The `amber check` driver: every script under every schedule against its fresh run, with a
//! progress bar, a final table, and a report directory (summary.md, results.json, divergences).

use crate::generators::Schedule;
use crate::oracles::{Trace, first_difference};
use crate::runner::{self, Quiet, RunReport};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The verdict on one script under one schedule.
#[derive(Debug, Clone)]
pub struct Row {
    pub script: String,
    pub schedule: String,
    pub runs: u64,
    pub points: u64,
    pub preemptions: u64,
    pub persists: u64,
    pub persisted_bytes: u64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub enum Verdict {
    Agrees,
    /// The schedule does not apply (e.g. exhaustive on a script with too many points).
    Skipped(String),
    Diverges {
        line: usize,
        expected: String,
        actual: String,
        artifacts: Option<PathBuf>,
    },
    Failed(String),
}

impl Verdict {
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Diverges { .. } | Verdict::Failed(_))
    }
    pub fn short(&self) -> String {
        match self {
            Verdict::Agrees => "agrees".into(),
            Verdict::Skipped(why) => format!("skipped ({why})"),
            Verdict::Diverges { line, .. } => format!("DIVERGES at trace line {line}"),
            Verdict::Failed(e) => format!("FAILED: {}", e.lines().next().unwrap_or_default()),
        }
    }
}

pub struct Options {
    pub scripts: Vec<PathBuf>,
    pub schedules: Vec<Schedule>,
    pub jobs: usize,
    pub report_dir: PathBuf,
    pub seed: u64,
    pub amber: PathBuf,
    /// Limits of every script's reference run and of its pre-empted runs: a runaway script
    /// is killed and fails the check instead of stalling it.
    pub limits: runner::RunLimits,
}

/// The reference run's default tick cap: about 30 times the largest corpus script.
pub const DEFAULT_MAX_TICKS: u64 = 100_000_000;

/// The progress bar of long runs (hidden when stderr is not a terminal).
pub fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

pub fn run(opts: &Options) -> Vec<Row> {
    let total = (opts.scripts.len() * opts.schedules.len()) as u64;
    let bar = progress_bar();
    bar.set_length(total);
    let next = AtomicUsize::new(0);
    let rows = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.min(opts.scripts.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = opts.scripts.get(i) else { break };
                    let result = check_script(path, opts, &bar);
                    rows.lock().unwrap_or_else(|e| e.into_inner()).extend(result);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    rows.sort_by(|a, b| (&a.script, &a.schedule).cmp(&(&b.script, &b.schedule)));
    rows
}

fn check_script(path: &Path, opts: &Options, bar: &indicatif::ProgressBar) -> Vec<Row> {
    let name = path.display().to_string();
    let row = |schedule: &str, verdict: Verdict| Row {
        script: name.clone(),
        schedule: schedule.into(),
        runs: 0,
        points: 0,
        preemptions: 0,
        persists: 0,
        persisted_bytes: 0,
        verdict,
    };
    let fail_all = |why: String| -> Vec<Row> {
        bar.inc(opts.schedules.len() as u64);
        opts.schedules.iter().map(|s| row(&s.name(), Verdict::Failed(why.clone()))).collect()
    };
    let source = match std::fs::read(path) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("cannot read: {e}")),
    };
    let script = match runner::compile_file(path, &source) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("compile error: {e}")),
    };
    let fresh = match runner::run_script_limited(&script, Schedule::Fresh, opts.limits, &mut Quiet) {
        Ok(r) => r,
        Err(e) => return fail_all(format!("fresh run: {e}")),
    };
    if let crate::oracles::Ending::Killed(why) = &fresh.trace.ending {
        return fail_all(format!("the reference run was killed: {why}"));
    }
    let points = fresh.counts.ticks;
    let mut out = Vec::new();
    for &schedule in &opts.schedules {
        bar.set_message(format!("{} {}", short_name(path), schedule.name()));
        let mut r = row(&schedule.name(), Verdict::Agrees);
        r.points = points;
        if let Schedule::Exhaustive { max } = schedule
            && points > max
        {
            r.verdict = Verdict::Skipped(format!("{points} points > {max} (see --exhaustive-max)"));
            out.push(r);
            bar.inc(1);
            continue;
        }
        let reports: Result<Vec<RunReport>, _> = match schedule {
            Schedule::Fresh | Schedule::Preempt(_) => {
                runner::run_script_limited(&script, schedule, opts.limits, &mut Quiet).map(|r| vec![r])
            }
            _ => runner::run_persisting(&script, schedule, points, &opts.amber),
        };
        match reports {
            Err(e) => r.verdict = Verdict::Failed(e.to_string()),
            Ok(reports) => {
                for report in &reports {
                    r.runs += 1;
                    r.preemptions += report.counts.preemptions;
                    r.persists += report.counts.persists;
                    r.persisted_bytes += report.counts.persisted_bytes;
                    if !matches!(r.verdict, Verdict::Agrees) {
                        continue;
                    }
                    if let Some((line, expected, actual)) = first_difference(&fresh.trace, &report.trace) {
                        let artifacts =
                            save_divergence(opts, path, schedule, &fresh.trace, report, (line, &expected, &actual));
                        r.verdict = Verdict::Diverges { line, expected, actual, artifacts };
                    }
                }
            }
        }
        out.push(r);
        bar.inc(1);
    }
    out
}

fn short_name(path: &Path) -> String {
    path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Saves what a person needs to look into a divergence: the last snapshot, both traces, the
/// first differing line and a command that reproduces it.
fn save_divergence(
    opts: &Options,
    path: &Path,
    schedule: Schedule,
    fresh: &Trace,
    report: &RunReport,
    (line, expected, actual): (usize, &str, &str),
) -> Option<PathBuf> {
    let dir =
        opts.report_dir.join("divergences").join(format!("{}-{}", short_name(path), schedule.name().replace(':', "_")));
    std::fs::create_dir_all(&dir).ok()?;
    if let Some(snap) = &report.last_snapshot {
        std::fs::write(dir.join("snapshot.snap"), snap).ok()?;
    }
    std::fs::write(dir.join("fresh.trace"), fresh.lines().join("\n") + "\n").ok()?;
    std::fs::write(dir.join("resumed.trace"), report.trace.lines().join("\n") + "\n").ok()?;
    std::fs::write(
        dir.join("first-difference.txt"),
        format!("trace line {line}\nexpected: {expected}\nactual:   {actual}\n"),
    )
    .ok()?;
    let repro = format!("amber check {} --schedule {} --seed {}\n", path.display(), schedule.name(), opts.seed);
    std::fs::write(dir.join("reproduce.sh"), format!("#!/bin/sh\n{repro}")).ok()?;
    Some(dir)
}

/// Writes summary.md and results.json; returns the summary text.
/// The result table people read at the end of `amber check`: one row per script and schedule.
pub fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.script.len()).max().unwrap_or(6).max(6);
    let mut out =
        format!("{:width$}  {:18}  {:>9}  {:>5}  {:>8}  verdict\n", "script", "schedule", "points", "runs", "persists");
    for r in rows {
        out += &format!(
            "{:width$}  {:18}  {:>9}  {:>5}  {:>8}  {}\n",
            r.script,
            r.schedule,
            r.points,
            r.runs,
            r.persists,
            r.verdict.short()
        );
    }
    out
}

pub fn write_report(opts: &Options, rows: &[Row], seconds: f64) -> std::io::Result<String> {
    std::fs::create_dir_all(&opts.report_dir)?;
    let failures = rows.iter().filter(|r| r.verdict.is_failure()).count();
    let scripts = opts.scripts.len();
    let persists: u64 = rows.iter().map(|r| r.persists).sum();
    let preemptions: u64 = rows.iter().map(|r| r.preemptions).sum();
    let bytes: u64 = rows.iter().map(|r| r.persisted_bytes).sum();
    let mut md = String::from("# amber check\n\n");
    md += &format!(
        "{} scripts, {} schedules ({}), {} runs, {} pre-emptions, {} persists ({:.1} MB of snapshots), {} failing, {:.1} s, seed {}.\n\n",
        scripts,
        opts.schedules.len(),
        opts.schedules.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        rows.iter().map(|r| r.runs).sum::<u64>(),
        preemptions,
        persists,
        bytes as f64 / 1e6,
        failures,
        seconds,
        opts.seed
    );
    md += "| script | schedule | points | runs | persists | snapshot bytes | verdict |\n|---|---|---:|---:|---:|---:|---|\n";
    for r in rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.script,
            r.schedule,
            r.points,
            r.runs,
            r.persists,
            r.persisted_bytes,
            r.verdict.short()
        );
    }
    for r in rows {
        if let Verdict::Diverges { line, expected, actual, artifacts } = &r.verdict {
            md += &format!(
                "\n## {} under {}\n\nTrace line {line}:\n\n    expected: {expected}\n    actual:   {actual}\n\nArtifacts: {}\n",
                r.script,
                r.schedule,
                artifacts.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(not saved)".into())
            );
        }
    }
    std::fs::write(opts.report_dir.join("summary.md"), &md)?;
    let json_rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "script": r.script, "schedule": r.schedule, "points": r.points, "runs": r.runs,
                "preemptions": r.preemptions, "persists": r.persists, "persisted_bytes": r.persisted_bytes,
                "verdict": match &r.verdict {
                    Verdict::Agrees => json!({"kind": "agrees"}),
                    Verdict::Skipped(w) => json!({"kind": "skipped", "why": w}),
                    Verdict::Diverges { line, expected, actual, artifacts } => json!({
                        "kind": "diverges", "line": line, "expected": expected, "actual": actual,
                        "artifacts": artifacts.as_ref().map(|p| p.display().to_string()),
                    }),
                    Verdict::Failed(e) => json!({"kind": "failed", "error": e}),
                },
            })
        })
        .collect();
    let doc = json!({
        "scripts": scripts, "schedules": opts.schedules.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "seed": opts.seed, "seconds": seconds, "failing": failures, "persists": persists,
        "preemptions": preemptions, "persisted_bytes": bytes, "results": json_rows,
    });
    std::fs::write(opts.report_dir.join("results.json"), serde_json::to_string_pretty(&doc).unwrap_or_default())?;
    std::fs::write(opts.report_dir.join("chart.svg"), chart(rows))?;
    Ok(md)
}

/// An SVG chart per script: its pre-emption points and the bytes of all snapshots its runs
/// persisted (log10 scales: they span from tens to millions).
pub fn chart(rows: &[Row]) -> String {
    use plotters::prelude::*;
    let mut scripts: Vec<(String, u64, u64)> = Vec::new();
    for r in rows {
        let name = Path::new(&r.script).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match scripts.iter_mut().find(|(n, _, _)| *n == name) {
            Some(entry) => {
                entry.1 = entry.1.max(r.points);
                entry.2 += r.persisted_bytes;
            }
            None => scripts.push((name, r.points, r.persisted_bytes)),
        }
    }
    let n = scripts.len().max(1);
    let width = (160 + 22 * n as u32).max(640);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, 720)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (top, bottom) = root.split_vertically(360);
        let log = |v: u64| if v == 0 { 0.0 } else { (v as f64).log10() };
        type Panel<'a, 'b> =
            (&'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>, &'static str, RGBColor, Vec<f64>);
        let panels: [Panel; 2] = [
            (&top, "pre-emption points per script (log10)", BLUE, scripts.iter().map(|s| log(s.1)).collect()),
            (
                &bottom,
                "bytes persisted per script, all schedules (log10)",
                RED,
                scripts.iter().map(|s| log(s.2)).collect(),
            ),
        ];
        for (area, title, color, values) in panels {
            let max = values.iter().cloned().fold(1.0f64, f64::max).ceil();
            let Ok(mut chart) = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(if std::ptr::eq(area, &bottom) { 120 } else { 10 })
                .y_label_area_size(40)
                .build_cartesian_2d(0..n as i32, 0.0..max)
            else {
                continue;
            };
            let names: Vec<String> = scripts.iter().map(|s| s.0.clone()).collect();
            let _ = chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&|i| names.get(*i as usize).cloned().unwrap_or_default())
                .x_label_style(("sans-serif", 9).into_font().transform(FontTransform::Rotate90))
                .disable_x_mesh()
                .draw();
            let _ = chart.draw_series(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Rectangle::new([(i as i32, 0.0), (i as i32 + 1, *v)], color.filled())),
            );
        }
        let _ = root.present();
    }
    out
}
