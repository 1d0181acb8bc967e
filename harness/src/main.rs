//! The `amber` command line. The one place that reports errors to people and picks exit codes:
//! 0 success, 1 a script or check failed, 2 usage or I/O error.

use amber_harness::generators::{self, Schedule};
use amber_harness::oracles::Ending;
use amber_harness::runner::{self, RunError, RunObserver};
use amber_harness::{check, intake};
use amber_luau::{SourceCatalog, SuspendSite};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "amber",
    version,
    about = "Persist, resume and validate the execution state of Luau programs",
    long_about = "amber runs Luau scripts on Amber's patched runtime, which can pre-empt a script at any VM \
                  safe point (calls, returns, loop back edges) on a tick budget.\n\n\
                  Exit codes: 0 success, 1 a script failed or a check found a divergence, 2 usage or I/O error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a script to completion, resuming after every pre-emption; its output goes to stdout.
    ///
    /// Exit 0 when the script finishes, 1 with the error and traceback on stderr when it fails
    /// (or does not compile), 2 on usage or I/O errors.
    Run {
        /// The Luau script to run.
        script: PathBuf,
        /// Pre-empt the script at every N-th VM interrupt tick (1: at every tick). Without it the
        /// script runs uninterrupted.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        preempt_every: Option<u64>,
        /// Print one line per pre-emption on stderr: chunk, line, proto id, yield-point index.
        #[arg(long)]
        trace_yields: bool,
    },
    /// Run a script pre-empted at every interrupt tick and write its state at the N-th
    /// pre-emption (or at the first coroutine.yield of its main function) to a snapshot.
    ///
    /// The script's output up to that point goes to stdout. Exit 0 when the snapshot was
    /// written, 1 when the script finished or failed first, 2 on usage or I/O errors.
    #[command(group(clap::ArgGroup::new("when").required(true).args(["at", "at_yield"])))]
    Persist {
        script: PathBuf,
        /// Persist at the N-th pre-emption (1: the first interrupt site).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        at: Option<u64>,
        /// Persist at the first coroutine.yield of the main function instead.
        #[arg(long)]
        at_yield: bool,
        /// Where to write the snapshot.
        #[arg(short, long, value_name = "SNAP")]
        output: PathBuf,
        /// Write only the scripts' hashes; `amber resume --source-dir` supplies the sources.
        #[arg(long)]
        no_embed_source: bool,
    },
    /// Validate a snapshot, restore it and run it to completion, printing its output as
    /// `amber run` does. Exit 0 when it finishes, 1 when it fails or the snapshot is refused
    /// (diagnostics on stderr), 2 on usage or I/O errors.
    Resume {
        snapshot: PathBuf,
        /// Directory of sources for snapshots that do not embed them (matched by SHA-256).
        #[arg(long, value_name = "DIR")]
        source_dir: Option<PathBuf>,
        /// Pre-empt at every N-th tick after resuming (default: run uninterrupted).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        preempt_every: Option<u64>,
        /// Limits and allowlists for the intake check (see `amber validate --limits`).
        #[arg(long, value_name = "FILE")]
        limits: Option<PathBuf>,
        /// After the run, report its trace on stderr (`trace ...` lines and `state digest:`),
        /// for `amber check`'s cross-process schedule.
        #[arg(long)]
        digest: bool,
    },
    /// Validate untrusted snapshots before anything is built from them: a CI gate.
    ///
    /// Exit 0 when every snapshot is valid, 1 when any is invalid, 2 on usage or I/O errors.
    Validate {
        /// Snapshot files.
        #[arg(required = true)]
        snapshots: Vec<PathBuf>,
        /// Directory of script sources for snapshots that do not embed them (files are matched
        /// by the SHA-256 of their contents).
        #[arg(long, value_name = "DIR")]
        source_dir: Option<PathBuf>,
        /// Limits and allowlists (TOML; see README.md). Default: generous sizes, the standard
        /// base image's permanents, no userdata codecs.
        #[arg(long, value_name = "FILE")]
        limits: Option<PathBuf>,
        /// Report format: text for people, json or sarif for CI.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// Summarise a snapshot (objects by type, threads and frames, scripts, permanents), or print
    /// its object graph in Graphviz dot. Decodes only: inspecting does not validate.
    Inspect {
        snapshot: PathBuf,
        /// Print the object graph in Graphviz dot instead of the summary.
        #[arg(long)]
        dot: bool,
    },
    /// Differential check: every script, run under every schedule (pre-empted, persisted,
    /// restored, resumed in another process), must produce the trace of its uninterrupted run:
    /// output, main-function yields, ending and end-state digest. Exit 0 when all agree, 1
    /// otherwise. Writes summary.md, results.json and divergence artifacts to the report
    /// directory.
    Check {
        /// Scripts or directories (default: the bundled corpus, corpus/scripts).
        paths: Vec<PathBuf>,
        /// Schedules (repeatable): preempt:N, exhaustive, every:N, random:SEED[:COUNT],
        /// at-yields, cross-process, restores:K. Default: preempt:1, exhaustive, every:97,
        /// random:SEED:20, at-yields, restores:3, cross-process.
        #[arg(long = "schedule", value_name = "S")]
        schedules: Vec<Schedule>,
        /// Scripts checked in parallel (default: the number of CPUs).
        #[arg(long, value_name = "J")]
        jobs: Option<usize>,
        /// Report directory.
        #[arg(long, value_name = "DIR", default_value = "reports/check")]
        report: PathBuf,
        /// Seed of the random schedules.
        #[arg(long, value_name = "N", default_value_t = 1)]
        seed: u64,
        /// Scripts with more pre-emption points than this are skipped by the exhaustive
        /// schedule (one run per point); raise it for nightly runs.
        #[arg(long, value_name = "N", default_value_t = generators::EXHAUSTIVE_LIMIT)]
        exhaustive_max: u64,
    },
    /// Hostile-mutation sweep: capture every script at several points, apply every targeted
    /// mutation class to each capture, validate every mutant as untrusted bytes, and resume every
    /// accepted one to its end in a child process under a tick budget.
    ///
    /// A capture the validator refuses, a mutant refused without the code its class must
    /// produce, and an accepted mutant that crashes, traps (a Luau assertion), hangs, panics or
    /// that restore refuses are findings, saved under the report directory. Exit 0 with no
    /// findings, 1 otherwise.
    Sweep {
        /// Scripts or directories (default: the bundled corpus, corpus/scripts).
        paths: Vec<PathBuf>,
        /// Captures per script at evenly spaced pre-emption points (plus two after yields).
        #[arg(long, value_name = "N", default_value_t = 3)]
        points: u32,
        /// Tick budget of each resumed mutant.
        #[arg(long, value_name = "N", default_value_t = 200_000)]
        max_ticks: u64,
        /// Seconds without progress after which a mutant counts as a hang.
        #[arg(long, value_name = "S", default_value_t = 20)]
        hang_seconds: u64,
        /// Keep every N-th mutant only (1: all of them).
        #[arg(long, value_name = "N", default_value_t = 1)]
        stride: usize,
        /// Worker processes (default: the number of CPUs).
        #[arg(long, value_name = "J")]
        jobs: Option<usize>,
        /// Report directory (summary.md, findings/).
        #[arg(long, value_name = "DIR", default_value = "reports/sweep")]
        report: PathBuf,
    },
    /// Write a fuzz campaign's report (fuzz/campaign.sh calls it): TARGET.json, TARGET.md and an
    /// SVG of edges covered over time, from libFuzzer's timestamped log.
    #[command(hide = true)]
    FuzzReport {
        #[arg(long)]
        target: String,
        /// libFuzzer's output, each line prefixed by the Unix time it was printed at.
        #[arg(long)]
        log: PathBuf,
        /// The minimized corpus directory (its files are counted).
        #[arg(long)]
        corpus: PathBuf,
        /// Where crash artifacts would be.
        #[arg(long)]
        artifacts: PathBuf,
        #[arg(long, default_value_t = 0.0)]
        seconds: f64,
        #[arg(long, default_value = "")]
        build: String,
        #[arg(long, default_value = "reports/fuzz")]
        out: PathBuf,
    },
    /// Write the fuzz targets' initial seeds (captures, hostile mutants, compiled corpus scripts,
    /// deterministic random inputs) under DIR/<target>/ (fuzz/campaign.sh seeds an empty corpus).
    #[command(hide = true)]
    FuzzSeeds {
        #[arg(long, default_value = "corpus/fuzz")]
        out: PathBuf,
    },
    /// The sweep's child process: resumes the snapshots listed in a file, one per line.
    #[command(hide = true)]
    SweepWorker {
        list: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        max_ticks: u64,
    },
    /// Apply one named targeted mutation to a snapshot's model and write it re-encoded
    /// canonically (the mutant then reaches the validator's semantic checks). Without
    /// `--mutation`, lists every mutant the snapshot has: index, class, field and the code its
    /// class expects.
    Mutate {
        snapshot: PathBuf,
        /// Mutation class (see --list-classes), optionally with `:INDEX` to pick one of its
        /// mutants (default 0).
        #[arg(long, value_name = "CLASS[:INDEX]")]
        mutation: Option<String>,
        /// Where to write the mutant.
        #[arg(short, long, value_name = "OUT", requires = "mutation")]
        output: Option<PathBuf>,
        /// Directory of sources for snapshots that do not embed them.
        #[arg(long, value_name = "DIR")]
        source_dir: Option<PathBuf>,
        /// List the mutation classes and exit.
        #[arg(long)]
        list_classes: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Sarif,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { script, preempt_every, trace_yields } => run(&script, preempt_every, trace_yields),
        Command::Validate { snapshots, source_dir, limits, format } => validate(&snapshots, source_dir, limits, format),
        Command::Inspect { snapshot, dot } => inspect(&snapshot, dot),
        Command::Persist { script, at, at_yield, output, no_embed_source } => {
            persist(&script, at, at_yield, &output, no_embed_source)
        }
        Command::Resume { snapshot, source_dir, preempt_every, limits, digest } => {
            resume(&snapshot, source_dir, preempt_every, limits, digest)
        }
        Command::Check { paths, schedules, jobs, report, seed, exhaustive_max } => {
            check(paths, schedules, jobs, report, seed, exhaustive_max)
        }
        Command::Sweep { paths, points, max_ticks, hang_seconds, stride, jobs, report } => {
            sweep(paths, points, max_ticks, hang_seconds, stride, jobs, report)
        }
        Command::SweepWorker { list, max_ticks } => {
            amber_harness::sweep::worker(&list, max_ticks).map(|()| ExitCode::SUCCESS).map_err(Stop::usage)
        }
        Command::FuzzSeeds { out } => fuzz_seeds(&out),
        Command::FuzzReport { target, log, corpus, artifacts, seconds, build, out } => {
            fuzz_report(&target, &log, &corpus, &artifacts, seconds, &build, &out)
        }
        Command::Mutate { snapshot, mutation, output, source_dir, list_classes } => {
            mutate(&snapshot, mutation, output, source_dir, list_classes)
        }
    };
    result.unwrap_or_else(|stop| {
        eprintln!("amber: {}", stop.message.trim_end());
        ExitCode::from(stop.code)
    })
}

/// Why a command stopped before its end; `main` reports it.
struct Stop {
    /// 1: the script, snapshot or check failed; 2: usage or I/O error.
    code: u8,
    message: String,
}

impl Stop {
    fn failed(message: impl std::fmt::Display) -> Stop {
        Stop { code: 1, message: message.to_string() }
    }

    fn usage(message: impl std::fmt::Display) -> Stop {
        Stop { code: 2, message: message.to_string() }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Stop> {
    std::fs::read(path).map_err(|e| Stop::usage(format!("cannot read {}: {e}", path.display())))
}

fn read_script(path: &Path) -> Result<amber_luau::Script, Stop> {
    let source = read_file(path)?;
    runner::compile_file(path, &source).map_err(|e| Stop::failed(format!("compile error: {e}")))
}

fn deterministic_vm() -> Result<amber_luau::Vm, Stop> {
    amber_luau::Vm::deterministic().map_err(Stop::usage)
}

struct Streaming {
    trace_yields: bool,
}

impl RunObserver for Streaming {
    fn output(&mut self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
    fn preempted(&mut self, site: Option<&SuspendSite>) {
        if self.trace_yields {
            match site {
                Some(s) => eprintln!(
                    "preempt {}:{} proto {} yield-point {} (pc {})",
                    s.chunk, s.line, s.proto_id, s.yield_point, s.pc
                ),
                None => eprintln!("preempt <site unknown>"),
            }
        }
    }
}

fn run(path: &Path, preempt_every: Option<u64>, trace_yields: bool) -> Result<ExitCode, Stop> {
    let script = read_script(path)?;
    let schedule = preempt_every.map_or(Schedule::Fresh, Schedule::Preempt);
    Ok(finish(runner::run_script(&script, schedule, &mut Streaming { trace_yields })))
}

fn validate(
    snapshots: &[PathBuf],
    source_dir: Option<PathBuf>,
    limits: Option<PathBuf>,
    format: ReportFormat,
) -> Result<ExitCode, Stop> {
    let limits = load_limits(limits)?;
    let catalog = load_catalog(source_dir.as_deref())?;
    let mut verdicts = Vec::new();
    for path in snapshots {
        let bytes = read_file(path)?;
        let result = amber_validator::validate(&bytes, &limits, &catalog).map(|v| intake::Summary {
            objects: v.snapshot().objects.len(),
            scripts: v.snapshot().scripts.len(),
            bytes: bytes.len(),
        });
        verdicts.push(intake::Verdict { file: path.display().to_string(), result });
    }
    let text = match format {
        ReportFormat::Text => intake::text(&verdicts),
        ReportFormat::Json => intake::json(&verdicts) + "\n",
        ReportFormat::Sarif => intake::sarif(&verdicts) + "\n",
    };
    print!("{text}");
    Ok(if verdicts.iter().all(|v| v.result.is_ok()) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn inspect(path: &Path, dot: bool) -> Result<ExitCode, Stop> {
    let bytes = read_file(path)?;
    // Decoding is bounded by the limits; inspect shows snapshots the validator would refuse for
    // other reasons, so a person can see why.
    let snapshot = amber_validator::decode(&bytes, &intake::default_limits())
        .map_err(|d| Stop::failed(format!("{}: {d}", path.display())))?;
    if dot {
        println!("{}", amber_harness::inspect::dot(&snapshot));
    } else {
        print!("{}", amber_harness::inspect::summary(&snapshot, bytes.len()));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(
    paths: Vec<PathBuf>,
    schedules: Vec<Schedule>,
    jobs: Option<usize>,
    report: PathBuf,
    seed: u64,
    exhaustive_max: u64,
) -> Result<ExitCode, Stop> {
    let scripts = scripts_or_corpus(paths)?;
    let schedules = if schedules.is_empty() { generators::default_schedules(seed) } else { schedules };
    let schedules = schedules
        .into_iter()
        .map(|s| if let Schedule::Exhaustive { .. } = s { Schedule::Exhaustive { max: exhaustive_max } } else { s })
        .collect();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let amber = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("amber"));
    let opts = check::Options { scripts, schedules, jobs, report_dir: report, seed, amber };
    let started = std::time::Instant::now();
    let rows = check::run(&opts);
    let seconds = started.elapsed().as_secs_f64();

    let width = rows.iter().map(|r| r.script.len()).max().unwrap_or(6).max(6);
    println!("{:width$}  {:18}  {:>9}  {:>5}  {:>8}  verdict", "script", "schedule", "points", "runs", "persists");
    for r in &rows {
        println!(
            "{:width$}  {:18}  {:>9}  {:>5}  {:>8}  {}",
            r.script,
            r.schedule,
            r.points,
            r.runs,
            r.persists,
            r.verdict.short()
        );
    }
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

fn sweep(
    paths: Vec<PathBuf>,
    points: u32,
    max_ticks: u64,
    hang_seconds: u64,
    stride: usize,
    jobs: Option<usize>,
    report: PathBuf,
) -> Result<ExitCode, Stop> {
    let scripts = scripts_or_corpus(paths)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let amber = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("amber"));
    let opts = amber_harness::sweep::Options {
        scripts,
        points,
        max_ticks,
        hang_seconds: hang_seconds.max(1),
        jobs,
        report: report.clone(),
        amber,
        stride,
    };
    let bar = check::progress_bar();
    let summary = amber_harness::sweep::run(&opts, &mut |what, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
    })
    .map_err(Stop::usage)?;
    bar.finish_and_clear();
    let md = amber_harness::sweep::write_report(&opts, &summary)
        .map_err(|e| Stop::usage(format!("cannot write the report to {}: {e}", report.display())))?;
    print!("{md}");
    Ok(if summary.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn fuzz_seeds(out: &Path) -> Result<ExitCode, Stop> {
    let corpus = generators::default_corpus_dir().join("..");
    let mut n = 0;
    for (target, name, bytes) in amber_harness::targets::initial_seeds(&corpus) {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).map_err(|e| Stop::usage(format!("{}: {e}", dir.display())))?;
        std::fs::write(dir.join(&name), bytes).map_err(|e| Stop::usage(format!("{name}: {e}")))?;
        n += 1;
    }
    println!("{n} seeds under {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn fuzz_report(
    target: &str,
    log: &Path,
    corpus: &Path,
    artifacts: &Path,
    seconds: f64,
    build: &str,
    out: &Path,
) -> Result<ExitCode, Stop> {
    use amber_harness::fuzz_report;
    let text = std::fs::read_to_string(log).map_err(|e| Stop::usage(format!("{}: {e}", log.display())))?;
    let samples = fuzz_report::parse(&text);
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0);
    let crashes: Vec<String> = std::fs::read_dir(artifacts)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let campaign =
        fuzz_report::Campaign { target, samples: &samples, seconds, corpus_files: count(corpus), crashes, build };
    let md = fuzz_report::write(out, &campaign).map_err(|e| Stop::usage(format!("{}: {e}", out.display())))?;
    print!("{md}");
    Ok(if campaign.crashes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn mutate(
    path: &Path,
    mutation: Option<String>,
    output: Option<PathBuf>,
    source_dir: Option<PathBuf>,
    list_classes: bool,
) -> Result<ExitCode, Stop> {
    use amber_harness::generators::mutations;
    if list_classes {
        for (name, what) in mutations::CLASSES {
            println!("{name:22} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = load_catalog(source_dir.as_deref())?;
    let bytes = read_file(path)?;
    let verified = amber_validator::validate(&bytes, &intake::default_limits(), &catalog).map_err(|report| {
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

fn load_limits(limits: Option<PathBuf>) -> Result<amber_validator::Limits, Stop> {
    match limits {
        Some(path) => intake::read_limits(&path).map_err(|e| Stop::usage(format!("limits file {e}"))),
        None => Ok(intake::default_limits()),
    }
}

fn load_catalog(source_dir: Option<&Path>) -> Result<SourceCatalog, Stop> {
    match source_dir {
        Some(dir) => SourceCatalog::with_source_dir(dir)
            .map_err(|e| Stop::usage(format!("source directory {}: {e}", dir.display()))),
        None => Ok(SourceCatalog::embedded_only()),
    }
}

fn persist(path: &Path, at: Option<u64>, at_yield: bool, output: &Path, no_embed: bool) -> Result<ExitCode, Stop> {
    use amber_luau::{Budget, Outcome};
    let script = read_script(path)?;
    let vm = deterministic_vm()?;
    let mut task = vm.spawn(&script).map_err(Stop::usage)?;
    let budget = if at_yield { Budget::unlimited() } else { Budget::ticks(1) };
    let mut preemptions = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        let outcome = task.resume(budget).map_err(Stop::failed)?;
        let _ = out.write_all(&task.take_output());
        match outcome {
            Outcome::Preempted => {
                preemptions += 1;
                if Some(preemptions) == at {
                    break;
                }
            }
            Outcome::Yielded(_) if at_yield => break,
            Outcome::Yielded(_) => {}
            other => {
                let _ = out.flush();
                let what = match other {
                    Outcome::Errored(e) => format!("failed ({})", e.message),
                    Outcome::Killed(r) => format!("was killed ({r})"),
                    _ => "finished".to_string(),
                };
                return Err(Stop::failed(match at {
                    Some(n) => format!("the script {what} after {preemptions} pre-emptions, before pre-emption {n}"),
                    None => format!("the script {what} before its main function yielded"),
                }));
            }
        }
    }
    let _ = out.flush();
    let snapshot = amber_luau::capture_with(&task, amber_luau::CaptureOptions { embed_sources: !no_embed })
        .map_err(Stop::failed)?;
    std::fs::write(output, amber_validator::encode(&snapshot))
        .map_err(|e| Stop::usage(format!("cannot write {}: {e}", output.display())))?;
    Ok(ExitCode::SUCCESS)
}

fn resume(
    path: &Path,
    source_dir: Option<PathBuf>,
    preempt_every: Option<u64>,
    limits: Option<PathBuf>,
    digest: bool,
) -> Result<ExitCode, Stop> {
    let limits = load_limits(limits)?;
    let catalog = load_catalog(source_dir.as_deref())?;
    let bytes = read_file(path)?;
    let vm = deterministic_vm()?;
    let limits = amber_validator::Limits { codecs: vm.codec_names(), ..limits };
    let verified = amber_validator::validate(&bytes, &limits, &catalog)
        .map_err(|report| Stop::failed(format!("{} is refused:\n{report}", path.display())))?;
    let mut task = amber_luau::restore(&vm, &verified, amber_luau::RestoreOptions::default())
        .map_err(|e| Stop::failed(format!("cannot restore {}: {e}", path.display())))?;
    let schedule = preempt_every.map_or(Schedule::Fresh, Schedule::Preempt);
    let result = runner::run_task(&mut task, schedule, &mut Streaming { trace_yields: false });
    if digest && let Ok(report) = &result {
        for y in &report.trace.yields {
            eprintln!("trace yield: {y}");
        }
        match &report.trace.ending {
            Ending::Returned(v) => eprintln!("trace returned: {}", v.join("\t")),
            Ending::Error(e) => eprintln!("trace error: {e}"),
            Ending::Killed(k) => eprintln!("trace killed: {k}"),
        }
        eprintln!("state digest: {}", report.trace.digest);
    }
    Ok(finish(result))
}

/// Exit code and stderr report of a finished run (shared by run and resume).
fn finish(result: Result<runner::RunReport, RunError>) -> ExitCode {
    match result {
        Ok(report) => match report.trace.ending {
            Ending::Returned(_) => ExitCode::SUCCESS,
            Ending::Error(message) => {
                eprintln!("{message}");
                eprintln!("stack traceback:");
                eprint!("{}", report.traceback.unwrap_or_default());
                ExitCode::from(1)
            }
            Ending::Killed(reason) => {
                eprintln!("amber: {reason}");
                ExitCode::from(1)
            }
        },
        Err(RunError::Compile(e)) => {
            eprintln!("amber: compile error: {e}");
            ExitCode::from(1)
        }
        Err(RunError::Vm(e)) => {
            eprintln!("amber: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("amber: {e}");
            ExitCode::from(1)
        }
    }
}
