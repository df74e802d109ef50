#!/usr/bin/env bash
# The regression gate: runs the smoke sweep (sweeps/smoke.toml) and compares it with the committed
# baseline (results/baselines/smoke/) through `kidbench compare`, then checks that the gate can
# fail: an `rkd` that trains worse (noise in its gradient) and an `rkd` that is slower (wasted
# forwards) must each be refused, for the right reason. Called by scripts/test.sh after the unit
# and integration tests, so that nothing else runs beside the timed cells.
#
#   scripts/gate.sh            run the gate (exit 1 on a regression or a gate that cannot fail)
#   scripts/gate.sh update     re-run the smoke sweep from scratch and rewrite the baseline
#                              (commit results/baselines/smoke/ afterwards)
#
# Work folder: $KIDBENCH_GATE_DIR (default target/gate). Latency is compared as a ratio to SFT
# measured in the same sweep; the tolerance here is $KIDBENCH_GATE_LATENCY (default 0.25, see
# docs/PROTOCOL.md for the noise it absorbs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
KB=./target/debug/kidbench
# the fixtures are workspace members: one build makes them all
cargo build --workspace --locked --quiet
WORK=${KIDBENCH_GATE_DIR:-target/gate}
BASE=results/baselines/smoke
LAT=${KIDBENCH_GATE_LATENCY:-0.25}
say() { printf 'gate: %s\n' "$*" >&2; }

# Copies what compare reads (records and per-question verdicts) from a sweep folder.
keep_records() {
  local from=$1 to=$2
  rm -rf "$to"
  (cd "$from" && find . -path '*/records/*.json' -o -path '*/questions/*.jsonl') | while read -r f; do
    mkdir -p "$to/$(dirname "$f")"
    cp "$from/$f" "$to/$f"
  done
}

if [ "${1:-}" = "update" ]; then
  rm -rf "$WORK/update"
  "$KB" sweep sweeps/smoke.toml --out "$WORK/update" --quiet
  keep_records "$WORK/update/smoke" "$BASE"
  say "baseline rewritten in $BASE ($(du -sh "$BASE" | cut -f1)); commit it"
  exit 0
fi

[ -d "$BASE" ] || { say "no baseline in $BASE (scripts/gate.sh update writes one)"; exit 1; }

# 1. The tree as it is must pass.
rm -rf "$WORK/new"
"$KB" sweep sweeps/smoke.toml --out "$WORK/new" --quiet
"$KB" compare "$BASE" "$WORK/new/smoke" --max-latency-growth "$LAT" --out "$WORK/compare.md"
say "unchanged tree: passed"

# 2. and 3. Fixtures that must be refused. Their sft and kid cells are this run's (same plans,
# copied); only the rkd cells, whose plugin is the fixture, are trained again.
check_fails() {
  local name=$1 want=$2 lib=$3
  local dir="$WORK/$name" plugins="$WORK/$name-plugins"
  rm -rf "$dir" "$plugins"
  mkdir -p "$dir/smoke" "$plugins"
  cp "target/debug/lib$lib.so" "$plugins/libkidbench_plugin_rkd.so"
  cp -r "$WORK/new/smoke/cells" "$dir/smoke/cells"
  find "$dir/smoke/cells" -mindepth 1 -maxdepth 1 -type d | while read -r c; do
    grep -q '"name": "rkd"' "$c/plan.json" && rm -rf "$c" || true
  done
  "$KB" sweep sweeps/smoke.toml --out "$dir" --quiet --plugin-dir "$plugins" 2>"$dir/sweep.log" \
    || { say "$name: the sweep itself failed"; cat "$dir/sweep.log" >&2; exit 1; }
  if "$KB" compare "$BASE" "$dir/smoke" --max-latency-growth "$LAT" >"$dir/compare.txt" 2>&1; then
    say "$name: the gate PASSED a deliberately $want rkd: it cannot fail"; cat "$dir/compare.txt" >&2; exit 1
  fi
  grep -q "^compare: FAILED: rkd.*$want" "$dir/compare.txt" \
    || { say "$name: refused, but not for rkd's $want"; cat "$dir/compare.txt" >&2; exit 1; }
  say "$name: refused, as it must be"
}
check_fails worse "EX drop" kidbench_broken_worse_rkd
check_fails slow "latency growth" kidbench_broken_slow_rkd
say "all checks passed"
