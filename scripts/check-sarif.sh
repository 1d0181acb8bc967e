#!/usr/bin/env bash
# Validates `amber validate --format sarif` with the official SARIF validator (Microsoft's
# Sarif.Multitool 5.7.0, from npm's @microsoft/sarif-multitool-linux; installed under
# target/sarif-multitool when missing). Three reports are checked: a valid capture, a hostile
# mutant, and garbage bytes. Passes only with 0 errors and 0 warnings in every report (notes,
# the validator's style suggestions, are listed but allowed).
#
#   scripts/check-sarif.sh [AMBER]     AMBER: the binary to test (default: a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tools="$root/target/sarif-multitool"
multitool="$tools/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
if [ ! -x "$multitool" ]; then
    command -v npm >/dev/null || { echo "check-sarif: npm is needed to install the SARIF validator" >&2; exit 2; }
    echo "check-sarif: installing @microsoft/sarif-multitool-linux@5.7.0 into $tools"
    mkdir -p "$tools"
    npm install --silent --no-audit --no-fund --prefix "$tools" @microsoft/sarif-multitool-linux@5.7.0
    # npm may skip the package's postinstall (which only marks the binary executable).
    chmod u+x "$multitool"
fi
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1

amber=${1:-}
if [ -z "$amber" ]; then
    cargo build --quiet -p amber-harness --bin amber
    amber="$root/target/debug/amber"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
captures=(corpus/snapshots/*.snap)
mutants=(corpus/hostile/*.snap)
valid=${captures[0]}
hostile=${mutants[0]}
printf 'AMBRSNAP but not really a snapshot' > "$work/garbage.snap"

status=0
for input in "$valid" "$hostile" "$work/garbage.snap"; do
    name=$(basename "$input" .snap)
    set +e
    "$amber" validate "$input" --format sarif > "$work/$name.sarif"
    rc=$?
    set -e
    if [ "$rc" -gt 1 ]; then
        echo "check-sarif: amber validate $input exited $rc" >&2
        status=1
        continue
    fi
    "$multitool" validate "$work/$name.sarif" --level "Error;Warning;Note" -o "$work/$name.validation.sarif" \
        > "$work/$name.log" 2>&1 || true
    errors=$(grep -cE ": error [A-Z]+[0-9]+" "$work/$name.log" || true)
    warnings=$(grep -cE ": warning [A-Z]+[0-9]+" "$work/$name.log" || true)
    notes=$(grep -cE ": note [A-Z]+[0-9]+" "$work/$name.log" || true)
    results=$(grep -c '"ruleId"' "$work/$name.sarif" || true)
    echo "check-sarif: $input: exit $rc, $results results; validator: $errors errors, $warnings warnings, $notes notes"
    if [ "$errors" -ne 0 ] || [ "$warnings" -ne 0 ] || ! grep -q "Analysis completed successfully" "$work/$name.log"; then
        grep -E ": (error|warning) " "$work/$name.log" | head -20 >&2 || cat "$work/$name.log" >&2
        status=1
    fi
done
[ $status -eq 0 ] && echo "check-sarif: every report passes the SARIF validator"
exit $status
