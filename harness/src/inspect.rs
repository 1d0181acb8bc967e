//! `amber inspect`: a readable summary of a snapshot, or its object graph in Graphviz dot.

use amber_validator::snapshot::{Frame, Object, ObjectKind, Snapshot};
use petgraph::dot::{Config, Dot};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn summary(s: &Snapshot, bytes: usize) -> String {
    let mut out = String::new();
    let h = &s.header;
    let _ =
        writeln!(out, "snapshot: {bytes} bytes, format version {}", amber_validator::snapshot::format::FORMAT_VERSION);
    let _ = writeln!(
        out,
        "luau {}, compiler O{} g{}, feature flags on: {}",
        h.luau_version,
        h.compiler.optimization_level,
        h.compiler.debug_level,
        if h.enabled_flags.is_empty() { "defaults".to_string() } else { h.enabled_flags.join(", ") }
    );
    let _ = writeln!(out, "permanent registry {}", hex8(&h.permanents_digest));

    let mut counts: BTreeMap<ObjectKind, usize> = BTreeMap::new();
    for o in &s.objects {
        *counts.entry(o.kind()).or_default() += 1;
    }
    let _ = writeln!(out, "\nobjects: {}", s.objects.len());
    for (kind, n) in &counts {
        let _ = writeln!(out, "  {:10} {n}", kind.name());
    }

    let _ = writeln!(out, "\nscripts: {}", s.scripts.len());
    for (i, sc) in s.scripts.iter().enumerate() {
        let _ = writeln!(
            out,
            "  script#{i} {} sha256 {} ({})",
            sc.chunk_name,
            sc.hash,
            match &sc.source {
                Some(src) => format!("source embedded, {} bytes", src.len()),
                None => "source not embedded".into(),
            }
        );
    }

    let _ = writeln!(out, "\nthreads:");
    for (i, o) in s.objects.iter().enumerate() {
        let Object::Thread(t) = o else { continue };
        let main = if i as u32 == s.roots.main_thread { " (main)" } else { "" };
        let _ = writeln!(
            out,
            "  thread#{i}{main}: {}, {} stack slots, {} frames, {} open upvalues",
            t.status.name(),
            t.stack.len(),
            t.frames.len(),
            t.open_upvalues.len(),
        );
        // Only what is stored: where frames lie is derived by the validator (inspect decodes
        // only, so it also shows snapshots the validator refuses).
        for (n, f) in t.frames.iter().enumerate() {
            let what = match *f {
                Frame::Lua { yield_point, varargs: 0 } => format!("Luau, at yield point {yield_point}"),
                Frame::Lua { yield_point, varargs } => {
                    format!("Luau, at yield point {yield_point}, {varargs} extra arguments")
                }
                Frame::C => "C".to_string(),
            };
            let _ = writeln!(out, "    frame {n}: {what}");
        }
    }

    let _ = writeln!(out, "\npermanents: {}", s.permanents.len());
    for chunk in s.permanents.chunks(6) {
        let _ = writeln!(out, "  {}", chunk.join(", "));
    }
    let _ = writeln!(
        out,
        "\nroots: main thread#{}, random state {:016x}, base globals: {} names at {} positions",
        s.roots.main_thread,
        s.roots.random_state,
        s.roots.globals_layout.iter().flatten().count(),
        s.roots.globals_layout.len()
    );
    out
}

fn hex8(d: &[u8; 32]) -> String {
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The object graph: a node per object (labelled `kind#index`), an edge per reference.
pub fn dot(s: &Snapshot) -> String {
    let mut g: DiGraph<String, ()> = DiGraph::with_capacity(s.objects.len(), s.objects.len() * 2);
    for (i, o) in s.objects.iter().enumerate() {
        let label = match o {
            Object::String(b) if b.len() <= 24 => format!("string#{i} {:?}", String::from_utf8_lossy(b)),
            _ if i as u32 == s.roots.main_thread => format!("{}#{i} (main)", o.kind().name()),
            _ => format!("{}#{i}", o.kind().name()),
        };
        g.add_node(label);
    }
    let n = s.objects.len();
    for (i, o) in s.objects.iter().enumerate() {
        o.for_each_reference(|to| {
            if (to as usize) < n {
                g.add_edge(NodeIndex::new(i), NodeIndex::new(to as usize), ());
            }
        });
    }
    format!("{:?}", Dot::with_config(&g, &[Config::EdgeNoLabel]))
}
