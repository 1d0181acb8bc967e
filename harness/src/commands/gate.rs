//! `amber validate` (the CI gate for untrusted snapshots) and `amber inspect`.

use super::{Stop, jobs, load_catalog, load_limits, read_file};
use crate::intake;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Report formats of `amber validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

pub struct ValidateOptions {
    /// Files, directories (every `*.snap` under them) and glob patterns.
    pub inputs: Vec<PathBuf>,
    pub source_dir: Option<PathBuf>,
    pub limits: Option<PathBuf>,
    pub format: Format,
    pub jobs: Option<usize>,
    /// Where SARIF help links point (default: the workspace's homepage).
    pub docs_url: Option<String>,
}

/// Progress on stderr when there are many files and stderr is a terminal (CI logs stay clean).
const PROGRESS_FROM: usize = 20;

pub fn validate(opts: ValidateOptions) -> Result<ExitCode, Stop> {
    let limits = load_limits(opts.limits)?;
    let catalog = load_catalog(opts.source_dir.as_deref())?;
    let files = intake::expand_inputs(&opts.inputs).map_err(Stop::usage)?;
    let bar = (files.len() >= PROGRESS_FROM && std::io::stderr().is_terminal()).then(|| {
        let bar = crate::check::progress_bar();
        bar.set_length(files.len() as u64);
        bar.set_message("validating");
        bar
    });
    let progress = |done: usize, _total: usize| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    };
    let verdicts =
        intake::validate_files(&files, &limits, &catalog, jobs(opts.jobs), &progress).map_err(Stop::usage)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let text = match opts.format {
        Format::Text => intake::text(&verdicts),
        Format::Json => intake::json(&verdicts) + "\n",
        Format::Sarif => {
            let docs = opts.docs_url.as_deref().unwrap_or(crate::sarif::DEFAULT_DOCS_URL);
            let bytes = |i: usize| std::fs::read(&files[i]).ok();
            crate::sarif::sarif(&verdicts, &limits, &bytes, docs) + "\n"
        }
    };
    print!("{text}");
    Ok(if verdicts.iter().all(|v| v.result.is_ok()) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn inspect(path: &Path, dot: bool) -> Result<ExitCode, Stop> {
    let bytes = read_file(path)?;
    // Decoding is bounded by the limits; inspect shows snapshots the validator would refuse for
    // other reasons, so a person can see why.
    let snapshot = amber_validator::decode(&bytes, &intake::default_limits().map_err(Stop::usage)?)
        .map_err(|d| Stop::failed(format!("{}: {d}", path.display())))?;
    if dot {
        println!("{}", crate::inspect::dot(&snapshot));
    } else {
        print!("{}", crate::inspect::summary(&snapshot, bytes.len()));
    }
    Ok(ExitCode::SUCCESS)
}
