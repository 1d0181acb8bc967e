#!/usr/bin/env bash
# One fuzz campaign: builds TARGET with AddressSanitizer and libFuzzer's coverage instrumentation
# of both the Rust (cargo fuzz) and the patched Luau C++ (clang, see luau/build.rs under
# `--cfg fuzzing`), runs it for SECONDS from the committed seeds, minimizes the corpus back into
# corpus/fuzz/TARGET, and writes reports/fuzz/TARGET.{json,md,svg}.
#
#   fuzz/campaign.sh TARGET SECONDS [extra libFuzzer flags...]
#
# Installs what it needs when missing: clang-14 and its sanitizer runtime (Debian), the nightly
# toolchain, cargo-fuzz. Exit status: 0 when the run left no crash, 1 otherwise (artifacts in
# fuzz/artifacts/TARGET).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

target=${1:?usage: fuzz/campaign.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/campaign.sh TARGET SECONDS}
shift 2

need=()
command -v clang++-14 >/dev/null || need+=(clang-14)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

# clang for the fuzz builds only (libFuzzer's instrumentation of the C++ needs it); the host
# `amber` that writes seeds and reports is built as usual, so the main target stays as it was.
fuzz_env=(env CC=clang-14 CXX=clang++-14)
seeds="$root/corpus/fuzz/$target"
work="$root/fuzz/corpus/$target"          # libFuzzer's working corpus (not committed)
artifacts="$root/fuzz/artifacts/$target"
log="$root/fuzz/logs/$target.log"
mkdir -p "$seeds" "$work" "$artifacts" "$(dirname "$log")"
if [ -z "$(ls -A "$seeds")" ]; then
    cargo build --release --quiet -p amber-harness --bin amber
    target/release/amber fuzz-seeds --out "$root/corpus/fuzz"
fi
cp -n "$seeds"/* "$work"/ 2>/dev/null || true

cd fuzz
"${fuzz_env[@]}" cargo +nightly fuzz build "$target"
echo "campaign: $target for $seconds s"
start=$EPOCHREALTIME
# Every libFuzzer line gets the time it was printed at (the report plots coverage over time).
set +e
"${fuzz_env[@]}" cargo +nightly fuzz run "$target" "$work" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$@" 2>&1 |
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done > "$log"
set -e
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

# Minimize into the committed seeds.
rm -rf "$seeds.min" && mkdir -p "$seeds.min"
"${fuzz_env[@]}" cargo +nightly fuzz cmin "$target" "$work" -- -timeout=30 -rss_limit_mb=4096 >/dev/null 2>&1 || true
cp "$work"/* "$seeds.min"/ 2>/dev/null || true
# The named seeds (captures of every corpus script and their mutants, `amber fuzz-seeds`) stay
# whatever cmin kept: a later campaign starts from every corpus script again. cmin names what it
# keeps by SHA-1, so a named seed's hash-named copy is dropped.
for named in "$seeds"/*.*; do
    [ -f "$named" ] || continue
    cp "$named" "$seeds.min"/
    rm -f "$seeds.min/$(sha1sum "$named" | cut -d' ' -f1)"
done
if [ -n "$(ls -A "$seeds.min")" ]; then
    rm -rf "$seeds" && mv "$seeds.min" "$seeds"
else
    rm -rf "$seeds.min"
fi

cd "$root"
cargo build --release --quiet -p amber-harness --bin amber
target/release/amber fuzz-report --target "$target" --log "$log" --corpus "$seeds" \
    --artifacts "$artifacts" --seconds "$elapsed" \
    --build "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); cargo fuzz (nightly, -Zsanitizer=address, libFuzzer), Luau C++ clang-14 -fsanitize=address,fuzzer-no-link with inline-8bit-counters, pc-table and trace-cmp coverage, Luau assertions on"
