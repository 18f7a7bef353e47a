#!/usr/bin/env bash
# The accuracy grid of the README's "Accuracy" tables: backtests of both
# data sets (the M5 dev set and rossmann-odd), both evaluation windows
# (the protocol's and one a year earlier, on which settings are chosen),
# learner seeds 1-4 and 1 and 8 partitions, one JSON report per run in
# $OUT, named DATASET-WINDOW-pPARTITIONS-sSEED.json. A report already in
# $OUT is kept, so an interrupted grid resumes. The runs go in the order
# the README measures them: protocol window, 1 partition, seed 1 first.
# Then scripts/acctable turns the reports into the tables.
#
#   scripts/accuracy.sh                       # the whole grid, about 64 runs of 2 minutes
#   OUT=/tmp/acc SEEDS="1" PARTITIONS="1" WINDOWS=protocol scripts/accuracy.sh
#   go run ./scripts/acctable /tmp/acc
#
# Environment: OUT (default accuracy-reports), DATA (default ../shared/data),
# SEEDS (default "1 2 3 4"), PARTITIONS (default "1 8"), WINDOWS (default
# "protocol early"), DATASETS (default "m5 rossmann"), JOBS runs at once
# (default 1), NICE niceness (default 10), ARGS more backtest flags for
# every run (for example "--candidates lstm,ets,tsb,ma28,seasonal_naive").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-accuracy-reports}
DATA=${DATA:-../shared/data}
SEEDS=${SEEDS:-1 2 3 4}
PARTITIONS=${PARTITIONS:-1 8}
WINDOWS=${WINDOWS:-protocol early}
DATASETS=${DATASETS:-m5 rossmann}
JOBS=${JOBS:-1}
NICE=${NICE:-10}
ARGS=${ARGS:-}
mkdir -p "$OUT"
bin="$OUT/trendstream"
go build -o "$bin" ./cmd/trendstream

# run DATASET WINDOW PARTITIONS SEED
run() {
	local ds=$1 win=$2 p=$3 seed=$4 src origin
	case $ds in
	m5)
		src=(--m5 "$DATA/m5-tx3-foods3")
		origin=2015-04-24 # a year before the protocol's 2016-04-24
		;;
	rossmann)
		src=(--events "$DATA/rossmann-odd/events.csv")
		origin=2014-07-03 # a year before the protocol's 2015-07-03
		;;
	*)
		echo "unknown data set $ds" >&2
		return 1
		;;
	esac
	if [ "$win" = early ]; then
		src+=(--origin "$origin")
	fi
	local name="$OUT/$ds-$win-p$p-s$seed"
	if [ -s "$name.json" ]; then
		return 0
	fi
	# shellcheck disable=SC2086
	if nice -n "$NICE" "$bin" backtest "${src[@]}" --partitions "$p" --learner-seed "$seed" \
		--quiet --report "$name.json.tmp" $ARGS >"$name.log" 2>&1; then
		mv "$name.json.tmp" "$name.json"
		echo "$name.json"
	else
		echo "$name failed, see $name.log" >&2
		return 1
	fi
}

# The order: window, then seed 1 before the others, then partitions.
for win in $WINDOWS; do
	for seedset in first rest; do
		for p in $PARTITIONS; do
			for seed in $SEEDS; do
				if { [ $seedset = first ] && [ "$seed" != "${SEEDS%% *}" ]; } ||
					{ [ $seedset = rest ] && [ "$seed" = "${SEEDS%% *}" ]; }; then
					continue
				fi
				for ds in $DATASETS; do
					while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
						wait -n || true
					done
					run "$ds" "$win" "$p" "$seed" &
				done
			done
		done
	done
done
wait
