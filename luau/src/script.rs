//! Compiling scripts: source in, bytecode plus its parsed shape out.

use crate::ffi;
use crate::flags::FeatureFlags;
use amber_validator::bytecode::{self, Module, YieldPointMap};
pub use amber_validator::snapshot::{CompilerSettings, ScriptHash};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{chunk}:{line}: {message}")]
pub struct CompileError {
    pub chunk: String,
    /// 1-based line of the error (0 when the compiler gave none).
    pub line: u32,
    pub message: String,
}

#[derive(Debug)]
struct ScriptInner {
    chunk_name: String,
    settings: CompilerSettings,
    /// Source, bytecode and analysis, shared with the validator's catalog: a restored script
    /// reuses the analysis validation made (or cached) instead of copying or redoing it.
    prepared: amber_validator::VerifiedScript,
}

/// A compiled script. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Script(Arc<ScriptInner>);

impl Script {
    /// Compiles with the default [`CompilerSettings`].
    pub fn compile(source: impl AsRef<[u8]>, chunk_name: &str) -> Result<Script, CompileError> {
        Script::compile_with(source, chunk_name, CompilerSettings::default())
    }

    pub fn compile_with(
        source: impl AsRef<[u8]>,
        chunk_name: &str,
        settings: CompilerSettings,
    ) -> Result<Script, CompileError> {
        let source = source.as_ref();
        let bytecode = compile_bytecode(source, settings).ok_or_else(|| CompileError {
            chunk: chunk_name.into(),
            line: 0,
            message: "the compiler failed".into(),
        })?;
        let (module, yield_maps) = match bytecode::parse_with_maps(&bytecode) {
            Ok(m) => m,
            Err(e) => {
                return Err(match e.kind {
                    bytecode::BytecodeErrorKind::CompileError(text) => parse_compile_error(chunk_name, &text),
                    other => CompileError {
                        chunk: chunk_name.into(),
                        line: 0,
                        message: format!("the compiler produced bytecode this reader refuses: {other}"),
                    },
                });
            }
        };
        let prepared = amber_validator::PreparedScript {
            source: source.to_vec(),
            hash: ScriptHash::of(source),
            bytecode,
            module,
            yield_maps,
        };
        Ok(Script(Arc::new(ScriptInner { chunk_name: chunk_name.into(), settings, prepared: Arc::new(prepared) })))
    }

    /// A script whose bytecode the validator already compiled and parsed (restore path).
    pub(crate) fn from_verified(
        chunk_name: &str,
        verified: &amber_validator::VerifiedScript,
        settings: CompilerSettings,
    ) -> Script {
        Script(Arc::new(ScriptInner { chunk_name: chunk_name.into(), settings, prepared: Arc::clone(verified) }))
    }

    pub fn chunk_name(&self) -> &str {
        &self.0.chunk_name
    }
    pub fn source(&self) -> &[u8] {
        &self.0.prepared.source
    }
    pub fn hash(&self) -> ScriptHash {
        self.0.prepared.hash
    }
    pub fn settings(&self) -> CompilerSettings {
        self.0.settings
    }
    pub fn bytecode(&self) -> &[u8] {
        &self.0.prepared.bytecode
    }
    pub fn module(&self) -> &Module {
        &self.0.prepared.module
    }
    /// The yield-point map of proto `id` (its index in the module).
    pub fn yield_map(&self, id: u32) -> Option<&YieldPointMap> {
        self.0.prepared.yield_maps.get(id as usize)
    }
}

/// Compiles `source` with `settings`: the compiler's raw output, which is either bytecode or an
/// encoded compile error (first byte 0). `None` only if the compiler itself failed.
pub fn compile_bytecode(source: &[u8], settings: CompilerSettings) -> Option<Vec<u8>> {
    FeatureFlags::pinned();
    let mut len = 0usize;
    // SAFETY: `source` is a valid slice for the duration of the call; the shim catches every
    // C++ exception and returns either NULL or a malloc'd buffer of `len` bytes.
    let raw = unsafe {
        ffi::amber_compile(
            source.as_ptr().cast(),
            source.len(),
            i32::from(settings.optimization_level),
            i32::from(settings.debug_level),
            &mut len,
        )
    };
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` points at `len` initialised bytes owned by us until amber_free below.
    let bytecode = unsafe { std::slice::from_raw_parts(raw.cast::<u8>(), len) }.to_vec();
    // SAFETY: `raw` came from amber_compile (malloc) and is freed exactly once.
    unsafe { ffi::amber_free(raw.cast()) };
    Some(bytecode)
}

/// Luau encodes a compile error as ":LINE: message" after the zero version byte.
fn parse_compile_error(chunk: &str, text: &str) -> CompileError {
    let rest = text.strip_prefix(':').unwrap_or(text);
    if let Some((line, message)) = rest.split_once(':')
        && let Ok(line) = line.trim().parse::<u32>()
    {
        return CompileError { chunk: chunk.into(), line, message: message.trim_start().into() };
    }
    CompileError { chunk: chunk.into(), line: 0, message: text.into() }
}
