#!/usr/bin/env bash
# The gate step of the GitHub Action (action.yml): validates the snapshots the action's inputs
# name, prints the text report to the log, writes the SARIF report, and sets the step output
# `valid`. Exits 0 when it could judge every snapshot (valid or not: the action decides later
# whether refusals fail the job, after uploading the report), 2 when it could not run.
#
# Environment (set by action.yml from its inputs): AMBER (the binary), INPUT_SNAPSHOTS
# (paths, directories or patterns separated by white space), INPUT_SOURCE_DIR, INPUT_LIMITS,
# INPUT_SARIF_FILE, GITHUB_OUTPUT (the step-output file), AMBER_DOCS_URL (help links).
set -uo pipefail
set -f   # patterns go to amber as written; amber expands them

: "${AMBER:?}" "${INPUT_SARIF_FILE:?}" "${GITHUB_OUTPUT:?}"
read -r -d '' -a args <<< "${INPUT_SNAPSHOTS:-}"
if [ ${#args[@]} -eq 0 ]; then
    echo "::error::the 'snapshots' input names nothing to validate"
    exit 2
fi
[ -n "${INPUT_SOURCE_DIR:-}" ] && args+=(--source-dir "$INPUT_SOURCE_DIR")
[ -n "${INPUT_LIMITS:-}" ] && args+=(--limits "$INPUT_LIMITS")

status=0
"$AMBER" validate "${args[@]}" --format text || status=$?
if [ "$status" -ge 2 ]; then
    echo "::error::amber validate could not run (exit $status): see the log above"
    exit 2
fi
sarif_status=0
"$AMBER" validate "${args[@]}" --format sarif > "$INPUT_SARIF_FILE" || sarif_status=$?
if [ "$sarif_status" -ne "$status" ]; then
    echo "::error::the SARIF run of amber validate ended differently (exit $sarif_status, not $status)"
    exit 2
fi
if [ "$status" -eq 0 ]; then
    echo "valid=true" >> "$GITHUB_OUTPUT"
else
    echo "valid=false" >> "$GITHUB_OUTPUT"
    echo "::warning::amber refused some snapshots; the findings are in $INPUT_SARIF_FILE"
fi
exit 0
