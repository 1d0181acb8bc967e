//! Builds the patched Luau VM and compiler.
//!
//! Luau's C++ comes from the pinned crates.io package `luau0-src` (never from this repository):
//! its files are copied to `OUT_DIR`, the anchored edits of `edits.rs` are applied to the copy,
//! and the copy plus our own internal-access C++ (`cpp/`) is compiled with `cc`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "edits.rs"]
mod edits;

/// The exact package `Cargo.toml` pins; its directory name carries the Luau release too.
const LUAU_PACKAGE: &str = "luau0-src";
const LUAU_PACKAGE_DIR: &str = "luau0-src-0.23.0+luau745";

/// The Luau components we build. CodeGen (native code) stays out: Amber refuses NATIVE frames.
const COMPONENTS: &[&str] = &["Common", "Ast", "Bytecode", "Compiler", "VM"];

/// Must match `LUA_VECTOR_SIZE` in `src/ffi.rs`.
const LUA_VECTOR_SIZE: &str = "3";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=edits.rs");
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-env-changed=AMBER_LUAU_SRC");

    let own_cpp = manifest_dir.join("cpp");
    let mut own_files = Vec::new();
    for entry in fs::read_dir(&own_cpp).expect("luau/cpp is missing") {
        let path = entry.expect("reading luau/cpp").path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.extension().is_some_and(|e| e == "cpp") {
            own_files.push(path);
        }
    }
    own_files.sort();

    let package = locate_luau_package(&manifest_dir);
    // The Luau release, from the package folder's name (`luau0-src-0.23.0+luau745` is Luau
    // 0.745): snapshot headers record it, so it comes from the sources actually built.
    let release = package
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once("+luau"))
        .map_or_else(|| "unknown".to_string(), |(_, r)| format!("0.{r}"));
    println!("cargo:rustc-env=AMBER_LUAU_RELEASE={release}");
    let out = PathBuf::from(env("OUT_DIR")).join("luau");
    if out.exists() {
        fs::remove_dir_all(&out).expect("cleaning the previous Luau copy");
    }
    for component in COMPONENTS {
        copy_tree(&package.join("luau").join(component), &out.join(component));
    }

    for edit in edits::EDITS {
        apply_edit(&out, edit);
    }

    let mut sources = Vec::new();
    for component in COMPONENTS {
        collect_cpp(&out.join(component).join("src"), &mut sources);
    }
    sources.sort();

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .warnings(false)
        // The interpreter is the hot path of every test: optimise it even in debug profiles.
        .opt_level(2)
        .define("LUA_API", "extern \"C\"")
        .define("LUACODE_API", "extern \"C\"")
        .define("LUA_VECTOR_SIZE", LUA_VECTOR_SIZE)
        .include(&own_cpp);
    for component in COMPONENTS {
        build.include(out.join(component).join("include"));
    }
    // Our own C++ reads VM internals (lstate.h, lobject.h, ...), which live next to the sources.
    build.include(out.join("VM").join("src"));
    // Under cargo fuzz (`--cfg fuzzing`) the C++ gets libFuzzer's coverage instrumentation and
    // AddressSanitizer (when the Rust side has it), and Luau's assertions: a trap is a finding.
    // An engine that sets CXXFLAGS itself (OSS-Fuzz, ClusterFuzzLite) is left to its own flags.
    let fuzzing = std::env::var_os("CARGO_CFG_FUZZING").is_some();
    println!("cargo:rerun-if-env-changed=CXXFLAGS");
    if fuzzing {
        let engine_flags = std::env::var("CXXFLAGS").unwrap_or_default();
        if !engine_flags.contains("fuzzer") {
            build.flag("-fsanitize=fuzzer-no-link");
            build.flag("-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp");
            if std::env::var("CARGO_CFG_SANITIZE").is_ok_and(|s| s.contains("address")) {
                build.flag("-fsanitize=address");
            }
        }
    }
    let assertions = env("PROFILE") == "debug" || fuzzing;
    println!("cargo:rustc-env=AMBER_LUAU_ASSERTIONS={}", if assertions { "on" } else { "off" });
    if assertions {
        build.define("LUAU_ENABLE_ASSERT", None);
    } else {
        build.flag_if_supported("-fno-math-errno");
    }
    build.files(&sources).files(&own_files).compile("amber_luau");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("build.rs: environment variable {name} is not set"))
}

/// Finds the pinned `luau0-src` package on disk. Order: an explicit override, the cargo registry
/// source folders, then `cargo metadata` (which also knows vendored or replaced sources).
fn locate_luau_package(manifest_dir: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("AMBER_LUAU_SRC") {
        let dir = PathBuf::from(dir);
        assert!(dir.join("luau").is_dir(), "AMBER_LUAU_SRC={} has no luau/ folder", dir.display());
        return dir;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home
        && let Ok(registries) = fs::read_dir(home.join("registry").join("src"))
    {
        let mut candidates: Vec<PathBuf> = registries
            .filter_map(|r| r.ok())
            .map(|r| r.path().join(LUAU_PACKAGE_DIR))
            .filter(|p| p.join("luau").is_dir())
            .collect();
        candidates.sort();
        if let Some(dir) = candidates.into_iter().next() {
            return dir;
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version=1", "--offline"])
        .current_dir(manifest_dir)
        .output()
        .expect("build.rs: running `cargo metadata` to find luau0-src");
    let text = String::from_utf8_lossy(&output.stdout);
    // The JSON has one "manifest_path" per package; pick the one inside the pinned package folder.
    for piece in text.split("\"manifest_path\":\"").skip(1) {
        let path = piece.split('"').next().unwrap_or_default();
        if path.contains(LUAU_PACKAGE_DIR) {
            let dir = PathBuf::from(path).parent().map(Path::to_path_buf).unwrap_or_default();
            if dir.join("luau").is_dir() {
                return dir;
            }
        }
    }
    panic!(
        "build.rs: cannot find the {LUAU_PACKAGE} package ({LUAU_PACKAGE_DIR}); run `cargo fetch` or set AMBER_LUAU_SRC"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

fn collect_cpp(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "cpp") {
            into.push(path);
        }
    }
}

/// Applies one anchored edit: the anchor must occur exactly once in the file, else the build stops
/// with the edit's name (a moved or duplicated anchor means Luau changed under us).
fn apply_edit(root: &Path, edit: &edits::Edit) {
    let path = root.join(edit.file);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("edit `{}`: cannot read {}: {e}", edit.name, edit.file));
    let count = text.matches(edit.anchor).count();
    if count != 1 {
        panic!("edit `{}`: anchor matches {count} times in {} (it must match exactly once)", edit.name, edit.file);
    }
    let replacement = match edit.action {
        edits::Action::Replace(with) => with.to_string(),
        edits::Action::InsertAfter(text) => format!("{}{}", edit.anchor, text),
        edits::Action::InsertBefore(text) => format!("{}{}", text, edit.anchor),
    };
    fs::write(&path, text.replacen(edit.anchor, &replacement, 1))
        .unwrap_or_else(|e| panic!("edit `{}`: cannot write {}: {e}", edit.name, edit.file));
}
