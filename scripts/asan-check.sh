#!/usr/bin/env bash
# The hostile-mutation sweep under AddressSanitizer, with Luau's assertions off, so that an
# assertion cannot hide a memory error behind a trap: Rust built with nightly's
# -Zsanitizer=address, the patched Luau C++ built with clang -fsanitize=address (release
# profile: build.rs defines LUAU_ENABLE_ASSERT only in debug builds).
#
#   scripts/asan-check.sh [amber sweep options...]     e.g. --points 3
#
# Installs clang-14 and its sanitizer runtime from Debian when missing (needs root or sudo).
# Exit status: the sweep's (0: no findings). The report goes to reports/asan/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=()
command -v clang++-14 >/dev/null || need_install+=(clang-14)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 || need_install+=(libclang-rt-14-dev)
if [ ${#need_install[@]} -gt 0 ]; then
    echo "asan-check: installing ${need_install[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_install[@]}"
fi
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal

target=x86_64-unknown-linux-gnu
export CC=clang-14 CXX=clang++-14
export CFLAGS="-fsanitize=address -fno-omit-frame-pointer"
export CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer"
export RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes"
# A separate target directory: these flags must not leak into the normal builds.
export CARGO_TARGET_DIR=target/asan
cargo +nightly build --release --target "$target" -p amber-harness --bin amber

amber="$CARGO_TARGET_DIR/$target/release/amber"
# Every worker aborts at the first error report, so the sweep records it as a finding with the
# mutant saved; leaks are not memory errors of a resumed snapshot.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=0:halt_on_error=1:symbolize=1"
echo "asan-check: sweeping with $amber"
status=0
"$amber" sweep --report reports/asan "$@" || status=$?
printf '\nInstrumented with AddressSanitizer: Rust (nightly -Zsanitizer=address) and the Luau C++ (%s -fsanitize=address).\n' "$CXX" >> reports/asan/summary.md
exit $status
