#!/usr/bin/env bash
# A local dry run of the engine build (OSS-Fuzz / ClusterFuzzLite) without Docker: sets the
# variables the engine's builder sets for a libFuzzer + AddressSanitizer build, runs
# fuzz/build-engine.sh exactly as .clusterfuzzlite/build.sh does, then checks what an engine
# checks before fuzzing: every target in $OUT runs its seed corpus (unzipped) with its options
# file and exits cleanly.
#
#   fuzz/oss-fuzz/dry-run.sh [OUT]        (default: fuzz/oss-fuzz/out)
#
# Needs clang-14 with its sanitizer runtime, nightly Rust, cargo-fuzz and zip; installs them
# when missing, as fuzz/campaign.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

need=()
command -v clang++-14 >/dev/null || need+=(clang-14)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
command -v zip >/dev/null || need+=(zip)
command -v unzip >/dev/null || need+=(unzip)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

# What OSS-Fuzz's base-clang image sets for SANITIZER=address, FUZZING_ENGINE=libfuzzer (less
# -stdlib=libc++, which needs the engine's own libc++ build).
export SRC="$root/.." WORK="$root/fuzz/oss-fuzz/work" OUT="${1:-$root/fuzz/oss-fuzz/out}"
export CC=clang-14 CXX=clang++-14
export SANITIZER=address FUZZING_ENGINE=libfuzzer ARCHITECTURE=x86_64
export CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fsanitize=address -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"
export CXXFLAGS="$CFLAGS"
export LIB_FUZZING_ENGINE="-fsanitize=fuzzer"
export RUSTUP_TOOLCHAIN=nightly
mkdir -p "$WORK" "$OUT"
# The engine runs build.sh from $SRC with the repository at $SRC/amber; here the repository is
# wherever it was cloned, so the script is called by its path.
"$root/fuzz/build-engine.sh"

status=0
for bin in "$OUT"/*.options; do
    t=$(basename "$bin" .options)
    seeds="$WORK/seeds/$t"
    rm -rf "$seeds" && mkdir -p "$seeds"
    [ -f "$OUT/${t}_seed_corpus.zip" ] && unzip -q -o "$OUT/${t}_seed_corpus.zip" -d "$seeds"
    timeout=$(sed -n 's/^timeout = //p' "$OUT/$t.options")
    rss=$(sed -n 's/^rss_limit_mb = //p' "$OUT/$t.options")
    if "$OUT/$t" -runs=0 -timeout="$timeout" -rss_limit_mb="$rss" "$seeds" > "$WORK/$t.log" 2>&1; then
        echo "dry-run: $t ran its $(ls "$seeds" | wc -l) seeds: $(grep -o 'INITED.*' "$WORK/$t.log" | head -1)"
    else
        echo "dry-run: $t FAILED on its seeds (log: $WORK/$t.log)"
        status=1
    fi
done
exit $status
