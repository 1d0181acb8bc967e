//! Canonical form and purity: whatever decodes re-encodes to the same bytes, and validating the
//! same bytes twice gives the same verdict with the same findings.

use amber_validator::{Limits, ScriptCatalog, decode, encode, validate};

/// Checks both properties of `bytes`; `Err` says which one broke.
pub fn check(bytes: &[u8], limits: &Limits, catalog: &dyn ScriptCatalog) -> Result<(), String> {
    if let Ok(model) = decode(bytes, limits) {
        let again = encode(&model);
        if again != bytes {
            let at = again.iter().zip(bytes).position(|(a, b)| a != b).unwrap_or(again.len().min(bytes.len()));
            return Err(format!(
                "decoded, but re-encodes differently from byte {at} ({} bytes in, {} out)",
                bytes.len(),
                again.len()
            ));
        }
    }
    let first = validate(bytes, limits, catalog).map(|v| v.warnings().to_vec());
    let second = validate(bytes, limits, catalog).map(|v| v.warnings().to_vec());
    if first != second {
        return Err("validating the same bytes twice gave two verdicts".into());
    }
    Ok(())
}
