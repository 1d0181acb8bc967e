//! The bytecode reader on what the pinned compiler really emits (version 13 layout with type
//! information, line and debug info), including hostile mutations of it.

use amber_luau::{CompilerSettings, Script};
use amber_validator::bytecode::{self, Opcode, YieldKind};

const SAMPLE: &str = r#"
local function gen(t)
    local out = {}
    for k, v in pairs(t) do out[#out + 1] = k .. "=" .. tostring(v) end
    for i = 1, #out do out[i] = out[i]:upper() end
    return table.concat(out, ",")
end
while false do end
return gen({a = 1, b = vector.create(1, 2, 3)})
"#;

#[test]
fn compiler_output_parses_at_every_setting() {
    for optimization_level in 0..=2 {
        for debug_level in 0..=2 {
            let settings = CompilerSettings { optimization_level, debug_level };
            let script = Script::compile_with(SAMPLE, "=sample", settings).unwrap();
            let module = script.module();
            assert_eq!(module.version, 13, "the pinned compiler emits LBC_VERSION_TARGET");
            assert!(module.protos.len() >= 2);
            let generator = module.protos.iter().find(|p| p.num_params == 1).expect("gen");
            let map = generator.yield_points().unwrap();
            // gen has a generic for (FORGLOOP: interrupt + iterator return), a numeric for
            // (FORNLOOP), calls (interrupt + call return) and a RETURN.
            let kinds = |k: YieldKind, op: Opcode| map.points.iter().filter(|p| p.kind == k && p.op == op).count();
            assert_eq!(kinds(YieldKind::Interrupt, Opcode::FORGLOOP), 1);
            assert_eq!(kinds(YieldKind::IteratorReturn, Opcode::FORGLOOP), 1);
            assert_eq!(kinds(YieldKind::Interrupt, Opcode::FORNLOOP), 1);
            assert!(kinds(YieldKind::CallReturn, Opcode::CALL) >= 2);
            assert!(kinds(YieldKind::Interrupt, Opcode::RETURN) >= 1);
            if debug_level > 0 {
                assert_eq!(generator.line_at(map.points[0].saved_pc).map(|l| (2..=6).contains(&l)), Some(true));
            }
        }
    }
}

#[test]
fn same_source_same_signatures_and_shape_changes_show() {
    let sigs = |src: &str| {
        let s = Script::compile(src, "=s").unwrap();
        s.module().protos.iter().map(|p| p.yield_points().unwrap().signature).collect::<Vec<_>>()
    };
    assert_eq!(sigs(SAMPLE), sigs(SAMPLE));
    // Constants differ, shapes do not.
    assert_eq!(sigs("local x = 1 print(x)"), sigs("local x = 2 print(x)"));
    // One more call.
    assert_ne!(sigs("local x = 1 print(x)"), sigs("local x = 1 print(x) print(x)"));
}

#[test]
fn every_truncation_and_byte_change_of_compiled_bytecode_is_handled() {
    let script = Script::compile(SAMPLE, "=sample").unwrap();
    let bytes = script.bytecode().to_vec();
    for len in 0..bytes.len() {
        assert!(bytecode::parse(&bytes[..len]).is_err(), "truncation to {len} accepted");
    }
    for i in 0..bytes.len() {
        for v in [0u8, 1, 0x7f, 0x80, 0xff, bytes[i] ^ 1, bytes[i].wrapping_add(1)] {
            let mut m = bytes.clone();
            m[i] = v;
            let _ = bytecode::parse(&m);
        }
    }
}
