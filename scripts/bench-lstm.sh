#!/usr/bin/env bash
# LSTM speed against PyTorch: runs the model benchmarks (one training step
# and forecasting, L=56, H=28, hidden 32 and 64, 1 and 2 layers, batch 64
# and 413, one goroutine) and prints samples per second next to PyTorch
# 1.13's single-thread figures from ../shared/ANCHORS.md (measured on an
# AVX-512 Xeon of this machine class), with the ratio. Forecast runs every
# window in full, as PyTorch does; ForecastCarried is daily forecasting
# with the carried state (a full run every 7 buckets), against the same
# PyTorch figure.
#
#   scripts/bench-lstm.sh          # BENCHTIME=2s by default
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run xxx -bench 'LSTM(Train|Forecast)' -benchmem -benchtime "${BENCHTIME:-2s}" ./model/)
echo "$out" | grep -E '^Benchmark'
echo
echo "$out" | awk '
BEGIN {
	# PyTorch samples/s: training at batch 413 and 64, forecasting at 413.
	pt["Train/1x32/B=413"] = 11742; pt["Train/1x32/B=64"] = 8151; pt["Forecast/1x32/B=413"] = 41597
	pt["Train/2x32/B=413"] = 5425;  pt["Train/2x32/B=64"] = 3850; pt["Forecast/2x32/B=413"] = 18866
	pt["Train/1x64/B=413"] = 5481;  pt["Train/1x64/B=64"] = 4684; pt["Forecast/1x64/B=413"] = 18374
	pt["Train/2x64/B=413"] = 2540;  pt["Train/2x64/B=64"] = 2059; pt["Forecast/2x64/B=413"] = 8404
	n = 0
	for (k in pt) if (k ~ /^Forecast\//) fc[++n] = k
	for (i = 1; i <= n; i++) { c = fc[i]; sub(/^Forecast/, "ForecastCarried", c); pt[c] = pt[fc[i]] }
	printf "%-22s %12s %12s %7s %8s\n", "benchmark", "trendstream", "pytorch", "ratio", "allocs"
}
/^BenchmarkLSTM/ {
	name = $1; sub(/^BenchmarkLSTM/, "", name); sub(/-[0-9]+$/, "", name)
	rate = 0; allocs = "?"
	for (i = 2; i <= NF; i++) {
		if ($(i) == "samples/s" || $(i) == "forecasts/s") rate = $(i-1)
		if ($(i) == "allocs/op") allocs = $(i-1)
	}
	if (name in pt) printf "%-22s %12.0f %12.0f %6.2fx %8s\n", name, rate, pt[name], rate / pt[name], allocs
	else printf "%-22s %12.0f %12s %7s %8s\n", name, rate, "-", "-", allocs
}'
