//! The verification harness's commands: `amber check` (differential), `amber sweep` (hostile
//! mutations), `amber mutate`, and the helpers fuzz/campaign.sh calls.

use super::{Stop, jobs, load_catalog, read_file};
use crate::generators::{self, Schedule, mutations};
use crate::{check, intake};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn scripts_or_corpus(paths: Vec<PathBuf>) -> Result<Vec<PathBuf>, Stop> {
    let paths = if paths.is_empty() { vec![generators::default_corpus_dir()] } else { paths };
    let scripts = generators::discover_scripts(&paths).map_err(Stop::usage)?;
    if scripts.is_empty() {
        return Err(Stop::usage(format!(
            "no .luau scripts under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(scripts)
}

fn this_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("amber"))
}

pub fn check(
    paths: Vec<PathBuf>,
    schedules: Vec<Schedule>,
    jobs_asked: Option<usize>,
    report: PathBuf,
    seed: u64,
    exhaustive_max: u64,
    limits: crate::runner::RunLimits,
) -> Result<ExitCode, Stop> {
    let scripts = scripts_or_corpus(paths)?;
    let schedules = if schedules.is_empty() { generators::default_schedules(seed) } else { schedules };
    let schedules = schedules
        .into_iter()
        .map(|s| if let Schedule::Exhaustive { .. } = s { Schedule::Exhaustive { max: exhaustive_max } } else { s })
        .collect();
    let opts = check::Options {
        scripts,
        schedules,
        jobs: jobs(jobs_asked),
        report_dir: report,
        seed,
        amber: this_program(),
        limits,
    };
    let started = std::time::Instant::now();
    let rows = check::run(&opts);
    let seconds = started.elapsed().as_secs_f64();
    print!("{}", check::table(&rows));
    let failures = rows.iter().filter(|r| r.verdict.is_failure()).count();
    match check::write_report(&opts, &rows, seconds) {
        Ok(md) => {
            let first = md.lines().nth(2).unwrap_or_default();
            println!("\n{first}\nreport: {}", opts.report_dir.join("summary.md").display());
        }
        Err(e) => eprintln!("amber: cannot write the report to {}: {e}", opts.report_dir.display()),
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub struct SweepOptions {
    pub paths: Vec<PathBuf>,
    pub points: u32,
    pub max_ticks: u64,
    pub hang_seconds: u64,
    pub stride: usize,
    pub jobs: Option<usize>,
    pub report: PathBuf,
}

pub fn sweep(o: SweepOptions) -> Result<ExitCode, Stop> {
    let opts = crate::sweep::Options {
        scripts: scripts_or_corpus(o.paths)?,
        points: o.points,
        max_ticks: o.max_ticks,
        hang_seconds: o.hang_seconds.max(1),
        jobs: jobs(o.jobs),
        report: o.report.clone(),
        amber: this_program(),
        stride: o.stride,
    };
    let bar = check::progress_bar();
    let summary = crate::sweep::run(&opts, &mut |what, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
    })
    .map_err(Stop::usage)?;
    bar.finish_and_clear();
    let md = crate::sweep::write_report(&opts, &summary)
        .map_err(|e| Stop::usage(format!("cannot write the report to {}: {e}", o.report.display())))?;
    print!("{md}");
    Ok(if summary.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn sweep_worker(list: &Path, max_ticks: u64) -> Result<ExitCode, Stop> {
    crate::sweep::worker(list, max_ticks).map(|()| ExitCode::SUCCESS).map_err(Stop::usage)
}

pub fn mutate(
    path: Option<&Path>,
    mutation: Option<String>,
    output: Option<PathBuf>,
    source_dir: Option<PathBuf>,
    list_classes: bool,
) -> Result<ExitCode, Stop> {
    if list_classes {
        for (name, what) in mutations::CLASSES {
            println!("{name:22} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = path.ok_or_else(|| Stop::usage("a snapshot to mutate is required"))?;
    let catalog = load_catalog(source_dir.as_deref())?;
    let bytes = read_file(path)?;
    let limits = intake::default_limits().map_err(Stop::usage)?;
    let verified = amber_validator::validate(&bytes, &limits, &catalog).map_err(|report| {
        Stop::failed(format!("{} is refused (mutate takes a valid capture):\n{report}", path.display()))
    })?;
    let Some(mutation) = mutation else {
        for (k, m) in mutations::mutants_of(&verified, None).iter().enumerate() {
            let expect = m.expect.map_or("-".to_string(), |c| c.to_string());
            println!("{k:6}  {:20} {expect:5} {}", m.class, m.detail);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (class, index) = match mutation.split_once(':') {
        Some((c, i)) => (c.to_string(), i.parse::<usize>().map_err(|_| Stop::usage(format!("`{i}` is not an index")))?),
        None => (mutation.clone(), 0),
    };
    if !mutations::CLASSES.iter().any(|(n, _)| *n == class) {
        return Err(Stop::usage(format!("unknown mutation class `{class}` (see amber mutate --list-classes)")));
    }
    let of_class = mutations::mutants_of(&verified, Some(&class));
    let count = of_class.len();
    let m = of_class.into_iter().nth(index).ok_or_else(|| {
        Stop::failed(format!("{} has {count} `{class}` mutants; there is no index {index}", path.display()))
    })?;
    let out = output.ok_or_else(|| Stop::usage("--output is required with --mutation"))?;
    std::fs::write(&out, amber_validator::encode(&m.snapshot))
        .map_err(|e| Stop::usage(format!("cannot write {}: {e}", out.display())))?;
    let expect = m.expect.map_or("no particular code".to_string(), |c| format!("expects {c}"));
    println!("{}: {} ({expect})", out.display(), m.detail);
    Ok(ExitCode::SUCCESS)
}

pub fn fuzz_seeds(out: &Path) -> Result<ExitCode, Stop> {
    let corpus = generators::default_corpus_dir().join("..");
    let mut n = 0;
    for (target, name, bytes) in crate::targets::initial_seeds(&corpus) {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).map_err(|e| Stop::usage(format!("{}: {e}", dir.display())))?;
        std::fs::write(dir.join(&name), bytes).map_err(|e| Stop::usage(format!("{name}: {e}")))?;
        n += 1;
    }
    println!("{n} seeds under {}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub struct FuzzReportOptions {
    pub target: String,
    pub log: PathBuf,
    pub corpus: PathBuf,
    pub artifacts: PathBuf,
    pub seconds: f64,
    pub build: String,
    pub out: PathBuf,
}

pub fn fuzz_report(o: FuzzReportOptions) -> Result<ExitCode, Stop> {
    use crate::fuzz_report;
    let text = std::fs::read_to_string(&o.log).map_err(|e| Stop::usage(format!("{}: {e}", o.log.display())))?;
    let samples = fuzz_report::parse(&text);
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0);
    let crashes: Vec<String> = std::fs::read_dir(&o.artifacts)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let campaign = fuzz_report::Campaign {
        target: &o.target,
        samples: &samples,
        seconds: o.seconds,
        executions: fuzz_report::final_executions(&text),
        corpus_files: count(&o.corpus),
        crashes,
        build: &o.build,
    };
    let md = fuzz_report::write(&o.out, &campaign).map_err(|e| Stop::usage(format!("{}: {e}", o.out.display())))?;
    print!("{md}");
    Ok(if campaign.crashes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
