//! What each `amber` subcommand does, behind the argument parsing in `main.rs`. Every command
//! returns `Result<ExitCode, Stop>`; `main` reports a [`Stop`] once and picks its exit code
//! (0 success, 1 a script, snapshot or check failed, 2 usage or I/O error).

mod gate;
mod harness;
mod run;

pub use gate::{Format, ValidateOptions, inspect, validate};
pub use harness::{FuzzReportOptions, SweepOptions, check, fuzz_report, fuzz_seeds, mutate, sweep, sweep_worker};
pub use run::{persist, resume, run};

use crate::intake;
use amber_luau::SourceCatalog;
use std::path::{Path, PathBuf};

/// Why a command stopped before its end; `main` reports it.
#[derive(Debug)]
pub struct Stop {
    /// 1: the script, snapshot or check failed; 2: usage or I/O error.
    pub code: u8,
    pub message: String,
}

impl Stop {
    pub fn failed(message: impl std::fmt::Display) -> Stop {
        Stop { code: 1, message: message.to_string() }
    }

    pub fn usage(message: impl std::fmt::Display) -> Stop {
        Stop { code: 2, message: message.to_string() }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Stop> {
    std::fs::read(path).map_err(|e| Stop::usage(format!("cannot read {}: {e}", path.display())))
}

fn load_limits(limits: Option<PathBuf>) -> Result<amber_validator::Limits, Stop> {
    match limits {
        Some(path) => intake::read_limits(&path).map_err(|e| Stop::usage(format!("limits file {e}"))),
        None => intake::default_limits().map_err(Stop::usage),
    }
}

fn load_catalog(source_dir: Option<&Path>) -> Result<SourceCatalog, Stop> {
    match source_dir {
        Some(dir) => SourceCatalog::with_source_dir(dir)
            .map_err(|e| Stop::usage(format!("source directory {}: {e}", dir.display()))),
        None => Ok(SourceCatalog::embedded_only()),
    }
}

/// Worker threads or processes: as asked, else one per CPU.
fn jobs(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}
