#!/usr/bin/env bash
# Builds every fuzz target the way an OSS-Fuzz-style engine expects (OSS-Fuzz, ClusterFuzzLite):
# one binary per target in $OUT, its seed corpus as $OUT/<target>_seed_corpus.zip and its
# libFuzzer options in $OUT/<target>.options. Called by .clusterfuzzlite/build.sh and
# fuzz/oss-fuzz/projects/amber/build.sh; fuzz/oss-fuzz/dry-run.sh runs it outside Docker.
#
# Reads what the engine sets: $OUT (required), $WORK, $CC, $CXX, $CFLAGS, $CXXFLAGS,
# $SANITIZER (only "address" is supported for Rust). $LIB_FUZZING_ENGINE is not needed:
# libfuzzer-sys links libFuzzer into the Rust binaries itself.
#
# The Luau C++ is compiled by the `cc` crate with the engine's $CXX and $CXXFLAGS (which carry
# -fsanitize=address,fuzzer-no-link); luau/build.rs adds its own instrumentation only when the
# flags do not already name the fuzzer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${OUT:?set OUT to the directory the fuzz targets go to}"
work=${WORK:-$here/target-engine}
sanitizer=${SANITIZER:-address}
if [ "$sanitizer" != address ]; then
    echo "build-engine: sanitizer '$sanitizer' is not supported for Rust targets (address only)" >&2
    exit 1
fi
# An engine that builds C++ against libc++ (OSS-Fuzz's -stdlib=libc++) needs the Rust link to
# name the same standard library as the C++ objects.
case "${CXXFLAGS:-}" in *-stdlib=libc++*) export CXXSTDLIB=c++ ;; esac

targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$here/Cargo.toml" | grep -v '^amber-fuzz$')
cd "$here"
cargo fuzz build -O --debug-assertions --sanitizer address --target-dir "$work/target"
bin="$work/target/x86_64-unknown-linux-gnu/release"
mkdir -p "$OUT"
for t in $targets; do
    cp "$bin/$t" "$OUT/$t"
    seeds="$here/../corpus/fuzz/$t"
    rm -f "$OUT/${t}_seed_corpus.zip"
    if [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ]; then
        (cd "$seeds" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
    fi
    # A resumed snapshot runs under a tick budget; 30 s without an answer is a hang.
    printf '[libfuzzer]\ntimeout = 30\nrss_limit_mb = 4096\n' > "$OUT/$t.options"
    echo "build-engine: $OUT/$t"
done
