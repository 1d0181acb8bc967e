//! The permanent-name registry: stable names for everything of the base image a snapshot may
//! refer to without writing it (library functions and tables, the base globals, type
//! metatables, upvalues of library closures, and the C functions behind closures the libraries
//! make at run time). Built by a fixed-order scan in `cpp/amber_image.cpp`.

use crate::Vm;
use crate::vm::RegistryHandle;
use amber_validator::PermanentKind;
use amber_validator::contract;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermanentRegistry {
    /// Canonical names in scan order, with what they name.
    pub names: Vec<(String, PermanentKind)>,
    /// (alias, canonical name): the same object met again under another name.
    pub aliases: Vec<(String, String)>,
}

impl PermanentRegistry {
    /// The public view of a VM's registry entries: canonical names with their kinds, and each
    /// alias with the canonical name of the same object.
    pub(crate) fn from_handles(handles: &[RegistryHandle]) -> PermanentRegistry {
        let mut names = Vec::new();
        let mut aliases = Vec::new();
        for h in handles {
            let kind = match h.kind {
                b'T' => PermanentKind::Table,
                b'F' => PermanentKind::Function,
                b'C' => PermanentKind::CFunction,
                b'U' => PermanentKind::Userdata,
                b'A' => {
                    let canonical = handles.iter().find(|c| c.kind != b'A' && c.object == h.object);
                    aliases.push((h.name.clone(), canonical.map(|c| c.name.clone()).unwrap_or_default()));
                    continue;
                }
                _ => PermanentKind::Other,
            };
            names.push((h.name.clone(), kind));
        }
        PermanentRegistry { names, aliases }
    }

    /// The registry of this build's standard base image. The first call makes a VM to scan (a
    /// host under memory pressure gets that failure as an error, never a panic); later calls
    /// return the same registry.
    pub fn standard() -> Result<&'static PermanentRegistry, crate::VmError> {
        static STANDARD: OnceLock<PermanentRegistry> = OnceLock::new();
        if let Some(r) = STANDARD.get() {
            return Ok(r);
        }
        let scanned = Vm::new()?.permanents();
        Ok(STANDARD.get_or_init(|| scanned))
    }

    /// The allowlist form the validator's [`amber_validator::Limits`] takes.
    pub fn allowlist(&self) -> BTreeMap<String, PermanentKind> {
        self.names.iter().cloned().collect()
    }

    pub fn kind(&self, name: &str) -> Option<PermanentKind> {
        self.names.iter().find(|(n, _)| n == name).map(|(_, k)| *k)
    }

    /// SHA-256 over the names and kinds in scan order (snapshot headers record it).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (name, kind) in &self.names {
            h.update(name.as_bytes());
            h.update([0, *kind as u8, b'\n']);
        }
        h.finalize().into()
    }
}

/// Every name the validator's contract gives a role ([`amber_validator::contract`]).
pub(crate) const CONTRACT_NAMES: &[&str] = &[
    contract::PCALL,
    contract::XPCALL,
    contract::COROUTINE_RESUME,
    contract::WRAPPED_RESUME,
    contract::COROUTINE_YIELD,
    contract::GMATCH_ITERATOR,
    contract::UTF8_CODES_ITERATOR,
    contract::STRING_FIND,
    contract::STRING_MATCH,
    contract::STRING_GSUB,
];

/// The role (`AMBER_ROLE_*` in cpp/amber_image.h) the contract gives a permanent name; the
/// registry scan finds each entry's role by function pointer and the two must agree.
pub(crate) fn contract_role(name: &str) -> std::ffi::c_int {
    match name {
        contract::PCALL => 1,
        contract::XPCALL => 2,
        contract::COROUTINE_RESUME => 3,
        contract::WRAPPED_RESUME => 4,
        contract::COROUTINE_YIELD => 5,
        contract::GMATCH_ITERATOR => 6,
        contract::UTF8_CODES_ITERATOR => 7,
        contract::STRING_FIND => 8,
        contract::STRING_MATCH => 9,
        contract::STRING_GSUB => 10,
        _ => 0,
    }
}
