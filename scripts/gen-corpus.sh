#!/usr/bin/env bash
# Regenerates corpus/snapshots (valid captures of every corpus script at several points) and
# corpus/hostile (targeted mutants of them, each with the diagnostic code its mutation class
# must produce, listed in corpus/hostile/manifest.tsv). Deterministic: the same tree gives the
# same files (the harness VMs read a fixed clock and seed math.random from the spawn order).
#
# Run it after a change to the snapshot format or to the mutation classes; the tests check
# that every file still is what the manifest says (cargo test -p amber-harness --test corpus).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
amber=target/release/amber
snapshots=corpus/snapshots
hostile=corpus/hostile
max_bytes=262144          # larger captures stay out of the repository
per_snapshot=1            # further hostile mutants taken from each snapshot, rotating over (class, code)

rm -rf "$snapshots" "$hostile"
mkdir -p "$snapshots" "$hostile"

for script in corpus/scripts/*.luau; do
    name=$(basename "$script" .luau)
    # The script's pre-emption points: one line each with --trace-yields.
    total=$("$amber" run "$script" --preempt-every 1 --trace-yields 2>&1 >/dev/null | grep -c '^preempt' || true)
    points=$(printf '%s\n' 1 40 400 $((total / 3)) $((2 * total / 3)) | awk -v t="$total" '$1 >= 1 && $1 <= t' | sort -nu)
    for at in $points; do
        out="$snapshots/$name.at$at.snap"
        # The script may end before pre-emption N: then there is nothing to persist.
        "$amber" persist "$script" --at "$at" -o "$out" >/dev/null 2>&1 || rm -f "$out"
    done
    out="$snapshots/$name.yield.snap"
    "$amber" persist "$script" --at-yield -o "$out" >/dev/null 2>&1 || rm -f "$out"
done
find "$snapshots" -name '*.snap' -size +"${max_bytes}"c -delete
echo "corpus/snapshots: $(ls "$snapshots" | wc -l) captures"

manifest="$hostile/manifest.tsv"
printf 'file\tsnapshot\tmutation\texpect\tdetail\n' > "$manifest"
n=0
for snap in "$snapshots"/*.snap; do
    base=$(basename "$snap" .snap)
    # `amber mutate SNAP` lists: index, class, expected code (- for none), detail. Keep the
    # first mutant of each (class, expected code) pair, numbered within its class.
    "$amber" mutate "$snap" | awk '
        { class = $2; k = seen[class]++; key = class " " $3; if ($3 != "-" && !(key in taken)) {
            taken[key] = 1; detail = ""; for (i = 4; i <= NF; i++) detail = detail (i > 4 ? " " : "") $i;
            print class "\t" k "\t" $3 "\t" detail } }' > /tmp/amber-classes.$$
    # Codes few snapshots can show (they need open upvalues, run-time C closures, resume chains,
    # live loops) are always taken; the rest rotate.
    mapfile -t rare < <(grep -P '\t(R007|R011|R013|R014|V001|V003|G004|G005|T003)\t' /tmp/amber-classes.$$ || true)
    mapfile -t rows < <(grep -vP '\t(R007|R011|R013|R014|V001|V003|G004|G005|T003)\t' /tmp/amber-classes.$$ || true)
    count=${#rows[@]}
    picked=("${rare[@]}")
    for ((j = 0; j < per_snapshot && j < count; j++)); do
        picked+=("${rows[$(( (n * per_snapshot + j) % count ))]}")
    done
    for row in "${picked[@]}"; do
        [ -n "$row" ] || continue
        IFS=$'\t' read -r class index expect detail <<< "$row"
        file="$base.$class.$index.snap"
        "$amber" mutate "$snap" --mutation "$class:$index" -o "$hostile/$file" >/dev/null
        printf '%s\t%s\t%s:%s\t%s\t%s\n' "$file" "$(basename "$snap")" "$class" "$index" "$expect" "$detail" >> "$manifest"
    done
    n=$((n + 1))
done
rm -f /tmp/amber-classes.$$
echo "corpus/hostile: $(($(wc -l < "$manifest") - 1)) mutants over $(cut -f3 "$manifest" | tail -n +2 | cut -d: -f1 | sort -u | wc -l) classes"
