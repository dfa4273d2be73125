#!/usr/bin/env bash
# A flame graph of one offstage-bench measurement, from perf samples of the bench process.
#
#   docs/bench/flame.sh NAME [offstage-bench arguments...]
#   docs/bench/flame.sh sqlite-throughput --only throughput --quick
#
# Writes docs/img/flame-NAME.svg. Needs `perf` (Debian: linux-perf) and inferno
# (`cargo install inferno --locked`). Samples are CPU time, so the graph's shape holds on a
# busy machine too; its rates do not.
set -euo pipefail
cd "$(dirname "$0")/../.."
name="$1"
shift
cargo build -q --release -p offstage-bench
data="$(mktemp)"
trap 'rm -f "$data"' EXIT
perf record -q -F 499 --call-graph dwarf,32768 -o "$data" -- target/release/offstage-bench "$@"
perf script -i "$data" 2>/dev/null \
    | inferno-collapse-perf \
    | inferno-flamegraph --title "offstage-bench $*" --width 1400 --minwidth 2 > "docs/img/flame-$name.svg"
echo "wrote docs/img/flame-$name.svg"
