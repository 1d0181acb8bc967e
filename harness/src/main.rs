//! The `amber` command line: argument parsing and dispatch. What each command does is in
//! `amber_harness::commands`; this is the one place that reports a command's stop to people and
//! picks the exit code: 0 success, 1 a script, snapshot or check failed, 2 usage or I/O error.

use amber_harness::commands::{self, Format};
use amber_harness::generators::{self, Schedule};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
        #[command(flatten)]
        limits: TaskLimitArgs,
    },
    /// Run a script to its N-th pre-emption point (interrupt tick), or to the first
    /// coroutine.yield of its main function, and write its state there to a snapshot.
    ///
    /// The script's output up to that point goes to stdout. Exit 0 when the snapshot was
    /// written, 1 when the script finished or failed first, 2 on usage or I/O errors.
    #[command(group(clap::ArgGroup::new("when").required(true).args(["at", "at_yield"])))]
    Persist {
        script: PathBuf,
        /// Persist at the N-th pre-emption point (1: the first interrupt site; `amber check`
        /// counts points the same way).
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
        /// Limits and allowlists for the intake check (see `amber validate --limits`); its
        /// `max_memory` is the task's memory limit when --memory-limit is not given.
        #[arg(long, value_name = "FILE")]
        limits: Option<PathBuf>,
        #[command(flatten)]
        task_limits: TaskLimitArgs,
        /// After the run, report the rest of its trace on stderr (yields, ending, end-state
        /// digest), for `amber check`'s cross-process schedule.
        #[arg(long)]
        digest: bool,
    },
    /// Validate untrusted snapshots before anything is built from them: a CI gate.
    ///
    /// Every check family runs (format, limits, references, scripts, yield points, frames,
    /// register types, graph, sandbox); findings carry a stable code, the object path and the
    /// rule (docs/DIAGNOSTICS.md). Exit 0 when every snapshot is valid, 1 when any is invalid,
    /// 2 on usage or I/O errors (an unreadable file, a directory or pattern with no snapshots).
    Validate {
        /// Snapshot files, directories (every *.snap under them, recursively) or glob patterns
        /// (quoted, e.g. 'incoming/**/*.snap').
        #[arg(required = true, value_name = "SNAP|DIR|GLOB")]
        snapshots: Vec<PathBuf>,
        /// Directory of script sources for snapshots that do not embed them (files are matched
        /// by the SHA-256 of their contents).
        #[arg(long, value_name = "DIR")]
        source_dir: Option<PathBuf>,
        /// Limits and allowlists (TOML; see README.md). Default: generous sizes, the standard
        /// base image's permanents, no userdata codecs.
        #[arg(long, value_name = "FILE")]
        limits: Option<PathBuf>,
        /// Report format: text for people, json (docs/validate-report.schema.json) or sarif
        /// (SARIF 2.1.0, for code scanning).
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Snapshots validated in parallel (default: the number of CPUs).
        #[arg(long, value_name = "J")]
        jobs: Option<usize>,
        /// Base address of Amber's documentation for SARIF help links
        /// (URL/docs/DIAGNOSTICS.md#code) and the tool's information URI.
        #[arg(long, value_name = "URL", env = "AMBER_DOCS_URL")]
        docs_url: Option<String>,
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
        /// at-yields, cross-process, restores:K, upgrade. Default: preempt:1, exhaustive,
        /// every:97, random:SEED:20, at-yields, restores:3, cross-process, upgrade.
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
        /// Ticks a script's reference run (and its pre-empted runs) may take; a runaway script
        /// is killed and fails the check.
        #[arg(long, value_name = "N", default_value_t = amber_harness::check::DEFAULT_MAX_TICKS)]
        max_ticks: u64,
        /// Bytes a script's reference run (and its pre-empted runs) may hold, e.g. 256MiB.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory_limit: Option<usize>,
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
        /// The valid capture to mutate (not needed with --list-classes).
        #[arg(required_unless_present = "list_classes")]
        snapshot: Option<PathBuf>,
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

/// What a task may spend; a task that passes a limit is killed with the reason (exit 1).
#[derive(clap::Args, Debug, Clone, Default)]
struct TaskLimitArgs {
    /// Interrupt ticks the task may run in all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_ticks: Option<u64>,
    /// Seconds the task may run (wall clock of its slices, checked every 50,000 ticks).
    #[arg(long, value_name = "S")]
    max_seconds: Option<f64>,
    /// Bytes the task may hold, e.g. 64MiB (units B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,
}

fn parse_size(text: &str) -> Result<usize, String> {
    amber_harness::intake::parse_size(text)
}

impl TaskLimitArgs {
    fn limits(&self) -> Result<amber_harness::runner::RunLimits, commands::Stop> {
        let max_time = match self.max_seconds {
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some(std::time::Duration::from_secs_f64(s)),
            Some(s) => return Err(commands::Stop::usage(format!("--max-seconds {s}: a positive number of seconds"))),
            None => None,
        };
        Ok(amber_harness::runner::RunLimits {
            task: amber_luau::TaskLimits { max_ticks: self.max_ticks, max_time },
            memory_limit: self.memory_limit,
        })
    }
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
        Command::Run { script, preempt_every, trace_yields, limits } => {
            limits.limits().and_then(|l| commands::run(&script, preempt_every, trace_yields, l))
        }
        Command::Validate { snapshots, source_dir, limits, format, jobs, docs_url } => {
            let format = match format {
                ReportFormat::Text => Format::Text,
                ReportFormat::Json => Format::Json,
                ReportFormat::Sarif => Format::Sarif,
            };
            commands::validate(commands::ValidateOptions {
                inputs: snapshots,
                source_dir,
                limits,
                format,
                jobs,
                docs_url,
            })
        }
        Command::Inspect { snapshot, dot } => commands::inspect(&snapshot, dot),
        Command::Persist { script, at, at_yield: _, output, no_embed_source } => {
            commands::persist(&script, at, &output, no_embed_source)
        }
        Command::Resume { snapshot, source_dir, preempt_every, limits, task_limits, digest } => {
            task_limits.limits().and_then(|l| commands::resume(&snapshot, source_dir, preempt_every, limits, l, digest))
        }
        Command::Check { paths, schedules, jobs, report, seed, exhaustive_max, max_ticks, memory_limit } => {
            let limits = amber_harness::runner::RunLimits {
                task: amber_luau::TaskLimits { max_ticks: Some(max_ticks), max_time: None },
                memory_limit,
            };
            commands::check(paths, schedules, jobs, report, seed, exhaustive_max, limits)
        }
        Command::Sweep { paths, points, max_ticks, hang_seconds, stride, jobs, report } => {
            commands::sweep(commands::SweepOptions { paths, points, max_ticks, hang_seconds, stride, jobs, report })
        }
        Command::SweepWorker { list, max_ticks } => commands::sweep_worker(&list, max_ticks),
        Command::FuzzSeeds { out } => commands::fuzz_seeds(&out),
        Command::FuzzReport { target, log, corpus, artifacts, seconds, build, out } => {
            commands::fuzz_report(commands::FuzzReportOptions { target, log, corpus, artifacts, seconds, build, out })
        }
        Command::Mutate { snapshot, mutation, output, source_dir, list_classes } => {
            commands::mutate(snapshot.as_deref(), mutation, output, source_dir, list_classes)
        }
    };
    result.unwrap_or_else(|stop| {
        eprintln!("amber: {}", stop.message.trim_end());
        ExitCode::from(stop.code)
    })
}
