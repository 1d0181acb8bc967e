//! SARIF 2.1.0 for `amber validate --format sarif`, as code-scanning tools consume it: one run,
//! one rule per diagnostic code with its metadata from `docs/DIAGNOSTICS.md` (the single source
//! of the rules' descriptions), one result per finding located at the snapshot file with an
//! exact byte region and the object path as a logical location.

use crate::intake::Verdict;
use amber_validator::diagnostics::{Code, Segment};
use amber_validator::snapshot::format::{Spans, encode_with_spans};
use amber_validator::{Diagnostic, Limits, Severity, decode};
use serde_json::{Value as Json, json};
use std::ops::Range;

/// The diagnostics reference, compiled in: rule metadata comes from the same text people read.
const DIAGNOSTICS_MD: &str = include_str!("../../docs/DIAGNOSTICS.md");

/// Where the documentation lives when nothing else is said: the workspace's `homepage`.
pub const DEFAULT_DOCS_URL: &str = env!("CARGO_PKG_HOMEPAGE");

/// One rule's documentation, from its `### CODE` section of DIAGNOSTICS.md.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDoc {
    /// The `Rule:` sentence.
    pub rule: String,
    /// The rule sentence and the explanation after it, as plain text.
    pub full: String,
    /// The whole section, as markdown.
    pub markdown: String,
    /// The severity its example shows (`error` or `warning`).
    pub level: &'static str,
}

/// The documentation of `code`, if DIAGNOSTICS.md has a section for it.
pub fn rule_doc(code: Code) -> Option<RuleDoc> {
    let heading = format!("### {}", code.as_str());
    let start = DIAGNOSTICS_MD.lines().position(|l| l.trim_end() == heading)?;
    let section: Vec<&str> = DIAGNOSTICS_MD
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("## ") && !l.starts_with("### "))
        .collect();
    let markdown = section.join("\n").trim().to_string();
    let rule = section.iter().find_map(|l| l.strip_prefix("Rule: "))?.trim().trim_end_matches('.').to_string();
    let prose: Vec<&str> = section
        .iter()
        .take_while(|l| !l.starts_with("Example"))
        .filter(|l| !l.starts_with("Rule: "))
        .map(|l| l.trim())
        .collect();
    let prose = prose.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
    let full = if prose.is_empty() { format!("{rule}.") } else { format!("{rule}. {prose}") };
    let example = section.iter().skip_while(|l| !l.starts_with("```")).nth(1).copied().unwrap_or("");
    let level = if example.starts_with("warning ") { "warning" } else { "error" };
    Some(RuleDoc { rule, full, markdown, level })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// The help address of `code` under the documentation base `docs`.
fn help_uri(docs: &str, code: Code) -> String {
    format!("{}/docs/DIAGNOSTICS.md#{}", docs.trim_end_matches('/'), code.as_str().to_lowercase())
}

fn rule(docs: &str, code: Code) -> Json {
    let doc = rule_doc(code).unwrap_or_else(|| RuleDoc {
        rule: code.rule().to_string(),
        full: format!("{}.", code.rule()),
        markdown: String::new(),
        level: "error",
    });
    json!({
        "id": code.as_str(),
        "name": code.name(),
        "shortDescription": {"text": code.rule()},
        "fullDescription": {"text": doc.full},
        "help": {"text": doc.full, "markdown": doc.markdown},
        "helpUri": help_uri(docs, code),
        "defaultConfiguration": {"level": doc.level},
        "properties": {"family": code.family().name()},
    })
}

/// A file name as a URI reference: relative paths stay relative (code-scanning tools resolve
/// them against the repository), absolute ones become `file://` URIs; everything outside
/// RFC 3986's unreserved set and `/` is percent-encoded.
pub fn file_uri(path: &str) -> String {
    let mut out = String::new();
    let path = path.replace('\\', "/");
    let absolute = path.starts_with('/');
    if absolute {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The byte region a finding is about: the byte a format finding names, else the object,
/// script, permanent or section its path starts at, else the whole snapshot.
fn region(d: &Diagnostic, spans: Option<&Spans>, len: usize) -> Range<usize> {
    let whole = 0..len;
    let offset = d.path.0.iter().rev().find_map(|s| if let Segment::Offset(o) = s { Some(*o) } else { None });
    if let Some(o) = offset {
        let o = o.min(len);
        return o..(o + 1).min(len);
    }
    let Some(spans) = spans else { return whole };
    let found = d.path.0.iter().find_map(|s| match s {
        Segment::Object { index, .. } => spans.objects.get(*index as usize).cloned(),
        Segment::Script(i) => spans.scripts.get(*i as usize).cloned(),
        Segment::Permanent(i) => spans.permanents.get(*i as usize).cloned(),
        Segment::Section(name) => spans.section(name),
        Segment::Roots => spans.section("roots"),
        _ => None,
    });
    found.filter(|r| r.end <= len).unwrap_or(whole)
}

/// SARIF for the verdicts. `bytes` gives each verdict's snapshot bytes again (for regions; they
/// are decoded under `limits`, as validation did); `docs` is the documentation base that help
/// addresses start with.
pub fn sarif(verdicts: &[Verdict], limits: &Limits, bytes: &dyn Fn(usize) -> Option<Vec<u8>>, docs: &str) -> String {
    let rules: Vec<Json> = Code::ALL.iter().map(|&c| rule(docs, c)).collect();
    let mut results = Vec::new();
    for (i, v) in verdicts.iter().enumerate() {
        let Err(report) = &v.result else { continue };
        let data = bytes(i).unwrap_or_default();
        // Spans of the decoded model: the format is canonical, so they are the input's own.
        let spans = decode(&data, limits)
            .ok()
            .map(|model| encode_with_spans(&model))
            .filter(|(again, _)| *again == data)
            .map(|(_, spans)| spans);
        for d in &report.diagnostics {
            let r = region(d, spans.as_ref(), data.len());
            results.push(json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|&c| c == d.code).unwrap_or(0),
                "level": level(d.severity),
                "message": {"text": format!("{}: {}", d.path, d.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": file_uri(&v.file)},
                        "region": {"byteOffset": r.start, "byteLength": r.end - r.start},
                    },
                    "logicalLocations": [{"fullyQualifiedName": d.path.to_string(), "kind": "object"}],
                }],
            }));
        }
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "amber",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": docs,
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_documentation() {
        for &code in Code::ALL {
            let doc = rule_doc(code).unwrap_or_else(|| panic!("docs/DIAGNOSTICS.md has no section {code}"));
            assert_eq!(doc.rule, code.rule(), "{code}: the code's rule and the documented rule differ");
            assert!(doc.full.starts_with(&doc.rule), "{code}");
            assert!(doc.markdown.contains("Example"), "{code}: no example");
        }
    }

    #[test]
    fn documentation_prose_follows_the_rule() {
        let doc = rule_doc(Code::IterPositionOutOfRange).expect("R011");
        assert!(doc.full.contains("The VM bounds-checks the position"), "{}", doc.full);
        assert!(!doc.full.contains("Example"), "{}", doc.full);
        assert_eq!(doc.level, "error");
    }

    #[test]
    fn file_names_become_uri_references() {
        assert_eq!(file_uri("corpus/hostile/a b.snap"), "corpus/hostile/a%20b.snap");
        assert_eq!(file_uri("/tmp/x#1.snap"), "file:///tmp/x%231.snap");
        assert_eq!(file_uri("incoming\\s.snap"), "incoming/s.snap");
    }
}
