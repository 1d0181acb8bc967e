//! A script catalog for drivers that validate the same few scripts many times (the sweep, the
//! fuzz targets): each (source, compiler settings) is compiled once.

use amber_luau::SourceCatalog;
use amber_validator::snapshot::{CompilerSettings, ScriptHash};
use amber_validator::{CatalogEntry, ScriptCatalog};
use std::cell::RefCell;
use std::collections::HashMap;

/// A catalog that compiles each (source, settings) once: a sweep validates the same few
/// scripts thousands of times.
#[derive(Default)]
pub struct CachedCatalog {
    inner: SourceCatalog,
    cache: RefCell<HashMap<(ScriptHash, CompilerSettings), Result<CatalogEntry, String>>>,
}

impl ScriptCatalog for CachedCatalog {
    fn lookup(
        &self,
        hash: &ScriptHash,
        chunk_name: &str,
        embedded: Option<&[u8]>,
        settings: CompilerSettings,
    ) -> Result<CatalogEntry, String> {
        if let Some(hit) = self.cache.borrow().get(&(*hash, settings)) {
            return hit.clone();
        }
        let found = self.inner.lookup(hash, chunk_name, embedded, settings);
        self.cache.borrow_mut().insert((*hash, settings), found.clone());
        found
    }
}
