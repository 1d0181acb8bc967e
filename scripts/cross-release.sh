#!/usr/bin/env bash
# Snapshots across Luau releases, for real: builds a second `amber` against the previous
# crates.io release of the Luau sources (default luau0-src 0.22.0+luau740; this project pins
# 0.23.0+luau745) in a temporary copy of the workspace, captures every corpus script at several
# points with it, and restores each snapshot with this checkout's `amber`.
#
#   scripts/cross-release.sh [OLD_VERSION]        e.g. 0.22.0
#
# Every snapshot must either resume and agree with a fresh run on this release (the output the
# old build printed before persisting plus what the new build prints after restoring equals the
# new build's uninterrupted output), or be refused with a diagnostic (a proto whose yield-point
# signature differs between the releases names itself, Y003). A crash, hang or disagreement
# fails the script. The anchored edits of luau/edits.rs must match the old sources too; if one
# does not, the script says which and stops.
#
# Writes reports/cross-release/summary.md (and prints it). Exit 0 when nothing crashed or
# disagreed, 1 otherwise, 2 when the old build could not be made.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
old_version=${1:-0.22.0}

work=$(mktemp -d "${TMPDIR:-/tmp}/amber-cross-release.XXXXXX")
trap 'rm -rf "$work"' EXIT
report="$root/reports/cross-release"
mkdir -p "$report"

echo "cross-release: building this checkout's amber"
cargo build --release --quiet -p amber-harness --bin amber || exit 2
new="$root/target/release/amber"

echo "cross-release: copying the workspace and pinning luau0-src =$old_version"
mkdir -p "$work/ws"
cp -r Cargo.toml Cargo.lock validator luau harness docs "$work/ws/"
sed -i "s/^luau0-src = \"=[^\"]*\"/luau0-src = \"=$old_version\"/" "$work/ws/luau/Cargo.toml"
(cd "$work/ws" && cargo update --quiet -p luau0-src --precise "$old_version" 2>/dev/null || cargo update --quiet -p luau0-src) || exit 2
package=$(cd "$work/ws" && cargo metadata --format-version=1 2>/dev/null |
    grep -o '"manifest_path":"[^"]*luau0-src-'"$old_version"'[^"]*"' | head -n 1 | sed 's/"manifest_path":"//; s/"$//')
package_dir=$(dirname "$package")
if [ ! -d "$package_dir/luau" ]; then
    echo "cross-release: luau0-src $old_version not found after cargo update" >&2
    exit 2
fi
sed -i "s|^const LUAU_PACKAGE_DIR: &str = \".*\";|const LUAU_PACKAGE_DIR: \&str = \"$(basename "$package_dir")\";|" "$work/ws/luau/build.rs"
old_release=$(basename "$package_dir" | sed 's/.*+luau/0./')
# The old build keeps its own target directory (under this checkout's target/), so a rerun is quick.
old_target="$root/target/cross-release-$old_version"
echo "cross-release: building amber against $(basename "$package_dir") (Luau $old_release)"
if ! (cd "$work/ws" && CARGO_TARGET_DIR="$old_target" AMBER_LUAU_SRC="$package_dir" \
    cargo build --release --quiet -p amber-harness --bin amber) > "$work/build.log" 2>&1; then
    echo "cross-release: the old build failed:" >&2
    grep -E "anchor|edit|error" "$work/build.log" | head -20 >&2
    exit 2
fi
old="$old_target/release/amber"

crossed=0; refused=0; diverged=0; crashed=0; skipped=0
declare -A reasons=()
header=""
rows=""
for script in corpus/scripts/*.luau; do
    name=$(basename "$script" .luau)
    fresh_out="$work/$name.fresh"
    timeout 300 "$new" run "$script" > "$fresh_out" 2>/dev/null
    total=$("$old" run "$script" --preempt-every 1 --trace-yields 2>&1 >/dev/null | grep -c '^preempt' || true)
    points=$(printf '%s\n' 1 40 400 $((total / 3)) $((2 * total / 3)) | awk -v t="$total" '$1 >= 1 && $1 <= t' | sort -nu)
    for at in $points yield; do
        snap="$work/$name.$at.snap"
        if [ "$at" = yield ]; then
            "$old" persist "$script" --at-yield -o "$snap" > "$work/prefix" 2>/dev/null
        else
            "$old" persist "$script" --at "$at" -o "$snap" > "$work/prefix" 2>/dev/null
        fi
        if [ ! -s "$snap" ]; then
            skipped=$((skipped + 1)) # the script ended (or never yielded) before this point
            continue
        fi
        [ -n "$header" ] || header=$("$new" inspect "$snap" | grep -m1 '^luau ')
        timeout 300 "$new" resume "$snap" > "$work/rest" 2> "$work/err"
        rc=$?
        if [ $rc -ge 124 ] || [ $rc -gt 128 ]; then
            crashed=$((crashed + 1))
            rows+="| $name | $at | **crashed or hung (exit $rc)** |"$'\n'
        elif grep -q "is refused" "$work/err"; then
            refused=$((refused + 1))
            why=$(grep -oE "(error|warning) [A-Z][0-9]{3}:[^(]*" "$work/err" | head -n 1)
            code=$(printf '%s' "$why" | grep -oE "[A-Z][0-9]{3}" | head -n 1)
            reasons[$code]=$(( ${reasons[$code]:-0} + 1 ))
            rows+="| $name | $at | refused: ${why} |"$'\n'
        elif cmp -s <(cat "$work/prefix" "$work/rest") "$fresh_out"; then
            crossed=$((crossed + 1))
        else
            diverged=$((diverged + 1))
            rows+="| $name | $at | **output differs from a fresh run** |"$'\n'
        fi
    done
done

total_snaps=$((crossed + refused + diverged + crashed))
{
    echo "# Snapshots across Luau releases"
    echo
    echo "Captured by \`amber\` built against luau0-src $old_version (Luau $old_release), restored by this"
    echo "checkout's \`amber\` (Luau $(grep -o '+luau[0-9]*' luau/build.rs | head -n 1 | sed 's/+luau/0./'))."
    echo "Every corpus script at up to five pre-emption points and at its first main-function yield"
    echo "(the snapshots' headers say: \`$header\`)."
    echo
    echo "| snapshots | resumed and agreed | refused | output differs | crashed or hung |"
    echo "|---:|---:|---:|---:|---:|"
    echo "| $total_snaps | $crossed | $refused | $diverged | $crashed |"
    echo
    if [ "${#reasons[@]}" -gt 0 ]; then
        echo "Refusals by code:"
        echo
        for code in "${!reasons[@]}"; do echo "- $code: ${reasons[$code]}"; done | sort
        echo
    fi
    if [ -n "$rows" ]; then
        echo "| script | point | outcome |"
        echo "|---|---|---|"
        printf '%s' "$rows"
    fi
} > "$report/summary.md"
cat "$report/summary.md"
[ $diverged -eq 0 ] && [ $crashed -eq 0 ]
