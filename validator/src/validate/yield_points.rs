//! Yield points: the snapshot records, per script, the yield-point signature of every proto its
//! closures run, and each must equal the signature of the bytecode the loader just compiled. A
//! frame's yield-point index only means something against the map it was taken from: another
//! compiler version or other settings give other code, and its frames are refused with the
//! proto and the reason rather than resumed at a point of other code. (That each frame's index
//! exists and its kind fits the frame's position is checked while frames are derived.)

use super::{Context, VerifiedScript};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use std::collections::BTreeSet;

/// `used`: (script, proto) of every proto a Luau closure of the snapshot runs.
pub(crate) fn check(
    ctx: &Context<'_>,
    scripts: &[Option<VerifiedScript>],
    used: &BTreeSet<(u32, u32)>,
    sink: &mut Sink,
) {
    let s = ctx.s;
    let pairs = used.iter().copied();
    let mut used: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); s.scripts.len()];
    for (script, proto) in pairs {
        if let Some(set) = used.get_mut(script as usize) {
            set.insert(proto);
        }
    }
    for (i, entry) in s.scripts.iter().enumerate() {
        let here = || ObjectPath::new().with(Segment::Script(i as u32)).with(Segment::Field("signatures"));
        let Some(Some(verified)) = scripts.get(i) else { continue };
        let recorded: BTreeSet<u32> = entry.signatures.iter().map(|p| p.proto).collect();
        for &proto in used[i].difference(&recorded) {
            sink.error(
                Code::SignatureMismatch,
                here(),
                format!(
                    "closures run proto {proto} ({}) of {}, but the snapshot records no yield-point signature for it",
                    verified.module.proto_name(proto),
                    entry.chunk_name
                ),
            );
        }
        for p in &entry.signatures {
            let Some(map) = verified.yield_maps.get(p.proto as usize) else {
                sink.error(
                    Code::SignatureMismatch,
                    here(),
                    format!(
                        "a signature for proto {}, but {} has {} protos",
                        p.proto,
                        entry.chunk_name,
                        verified.yield_maps.len()
                    ),
                );
                continue;
            };
            if !used[i].contains(&p.proto) {
                sink.error(
                    Code::SignatureMismatch,
                    here(),
                    format!("a signature for proto {}, which no closure of the snapshot runs", p.proto),
                );
            } else if map.signature.0 != p.signature {
                sink.error(
                    Code::SignatureMismatch,
                    here(),
                    format!(
                        "proto {} ({}) of {} was captured with yield-point signature {:016x}, but this loader's compiler (settings {:?}) gives {}: the code its frames were suspended in differs, so their yield points cannot be trusted",
                        p.proto,
                        verified.module.proto_name(p.proto),
                        entry.chunk_name,
                        p.signature,
                        s.header.compiler,
                        map.signature
                    ),
                );
            }
        }
    }
}
