//! The runtime's [`ScriptCatalog`]: sources come from the snapshot (embedded) or from a
//! directory indexed by SHA-256, and are compiled here with the snapshot's settings. Bytecode
//! never comes from a snapshot.

use crate::script::compile_bytecode;
use amber_validator::snapshot::{CompilerSettings, ScriptHash};
use amber_validator::{CatalogEntry, ScriptCatalog, VerifiedScript};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct SourceCatalog {
    by_hash: HashMap<ScriptHash, PathBuf>,
    /// Scripts compiled and analysed for earlier snapshots, by (hash, compiler settings): keep
    /// one catalog for a VM's lifetime and restoring many snapshots of one script (forks)
    /// compiles and analyses it once. Bounded: at [`PREPARED_CAP`] entries it starts over.
    prepared: Mutex<HashMap<(ScriptHash, CompilerSettings), VerifiedScript>>,
}

/// Most scripts a catalog keeps prepared (an intake gate fed many distinct hostile scripts does
/// not grow without bound).
pub const PREPARED_CAP: usize = 256;

impl SourceCatalog {
    /// A catalog of embedded sources only.
    pub fn embedded_only() -> SourceCatalog {
        SourceCatalog::default()
    }

    /// Indexes every regular file directly inside `dir` by the SHA-256 of its contents, so any
    /// file name works (`amber persist --no-embed-source` users keep their own layout).
    pub fn with_source_dir(dir: &Path) -> std::io::Result<SourceCatalog> {
        let mut by_hash = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_file() {
                let bytes = std::fs::read(&path)?;
                by_hash.entry(ScriptHash::of(&bytes)).or_insert(path);
            }
        }
        Ok(SourceCatalog { by_hash, prepared: Mutex::default() })
    }
}

impl ScriptCatalog for SourceCatalog {
    fn lookup(
        &self,
        hash: &ScriptHash,
        _chunk_name: &str,
        embedded: Option<&[u8]>,
        settings: CompilerSettings,
    ) -> Result<CatalogEntry, String> {
        let source = match embedded {
            Some(s) => s.to_vec(),
            None => {
                let path = self.by_hash.get(hash).ok_or_else(|| {
                    if self.by_hash.is_empty() {
                        "not embedded in the snapshot, and no source directory was given".to_string()
                    } else {
                        "not embedded in the snapshot, and no file in the source directory has this hash".to_string()
                    }
                })?;
                std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        let bytecode = compile_bytecode(&source, settings).ok_or("the compiler failed")?;
        Ok(CatalogEntry { source, bytecode })
    }

    fn prepared(&self, hash: &ScriptHash, settings: CompilerSettings) -> Option<VerifiedScript> {
        self.prepared.lock().ok()?.get(&(*hash, settings)).cloned()
    }

    fn remember(&self, hash: &ScriptHash, settings: CompilerSettings, script: &VerifiedScript) {
        if let Ok(mut cache) = self.prepared.lock() {
            if cache.len() >= PREPARED_CAP {
                cache.clear();
            }
            cache.insert((*hash, settings), Arc::clone(script));
        }
    }
}
