#!/usr/bin/env bash
# LSTM speed against PyTorch: runs the model benchmarks (one training step
# and forecasting, L=56, H=28, hidden 32 and 64, 1 and 2 layers, batch 64
# and 413, one goroutine), then, when a Python with PyTorch is found, the
# same work in PyTorch on this machine (scripts/bench-lstm-torch.py, one
# thread), and prints samples per second with two ratios: against PyTorch
# measured here in the same run, and against PyTorch 1.13's single-thread
# figures in ../shared/ANCHORS.md (measured on an AVX-512 Xeon, not this
# machine). Forecast runs every window in full, as PyTorch does;
# ForecastCarried is daily forecasting with the carried state (a full run
# every 7 buckets), against the same PyTorch figures.
#
#   scripts/bench-lstm.sh          # BENCHTIME=2s by default
#
# PyTorch on Debian 12: apt-get install python3-torch libopenblas0-pthread
# (without OpenBLAS, PyTorch runs on the reference BLAS and is several
# times slower; the script prints the BLAS library and its GFLOP/s). Set
# PYTHON to choose the interpreter, or PYTHON=none to skip PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run xxx -bench 'LSTM(Train|Forecast)' -benchmem -benchtime "${BENCHTIME:-2s}" ./model/)
echo "$out" | grep -E '^Benchmark'
echo

torch=$(mktemp)
trap 'rm -f "$torch"' EXIT
has_torch() { command -v "$1" >/dev/null && "$1" -c 'import torch' 2>/dev/null; }
python=
case ${PYTHON:-} in
none) echo "# PyTorch skipped (PYTHON=none): ratios against ANCHORS.md only" ;;
"")
	for p in python3 /usr/bin/python3; do
		if has_torch "$p"; then
			python=$p
			break
		fi
	done
	[[ -n $python ]] || echo "# no Python with PyTorch found: ratios against ANCHORS.md only"
	;;
*)
	if has_torch "$PYTHON"; then
		python=$PYTHON
	else
		echo "# $PYTHON cannot import torch: ratios against ANCHORS.md only"
	fi
	;;
esac
if [[ -n $python ]]; then
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$python" scripts/bench-lstm-torch.py >"$torch"
	grep '^#' "$torch" || echo "# $python printed no PyTorch figures"
fi

echo "$out" | awk -v torch="$torch" '
BEGIN {
	# ANCHORS.md samples/s: training at batch 413 and 64, forecasting at 413.
	an["Train/1x32/B=413"] = 11742; an["Train/1x32/B=64"] = 8151; an["Forecast/1x32/B=413"] = 41597
	an["Train/2x32/B=413"] = 5425;  an["Train/2x32/B=64"] = 3850; an["Forecast/2x32/B=413"] = 18866
	an["Train/1x64/B=413"] = 5481;  an["Train/1x64/B=64"] = 4684; an["Forecast/1x64/B=413"] = 18374
	an["Train/2x64/B=413"] = 2540;  an["Train/2x64/B=64"] = 2059; an["Forecast/2x64/B=413"] = 8404
	while ((getline line < torch) > 0) {
		if (line ~ /^#/) continue
		split(line, f, " "); here[f[1]] = f[2]
	}
	n = 0
	for (k in an) if (k ~ /^Forecast\//) fc[++n] = k
	for (i = 1; i <= n; i++) {
		c = fc[i]; sub(/^Forecast/, "ForecastCarried", c)
		an[c] = an[fc[i]]
		if (fc[i] in here) here[c] = here[fc[i]]
	}
	printf "%-22s %12s %12s %7s %12s %7s %8s\n", "benchmark", "trendstream", "pytorch here", "ratio", "anchor", "ratio", "allocs"
}
function ratio(a, b) { return b == "-" ? "-" : sprintf("%6.2fx", a / b) }
/^BenchmarkLSTM/ {
	name = $1; sub(/^BenchmarkLSTM/, "", name); sub(/-[0-9]+$/, "", name)
	rate = 0; allocs = "?"
	for (i = 2; i <= NF; i++) {
		if ($(i) == "samples/s" || $(i) == "forecasts/s") rate = $(i-1)
		if ($(i) == "allocs/op") allocs = $(i-1)
	}
	h = (name in here) ? here[name] : "-"
	a = (name in an) ? an[name] : "-"
	printf "%-22s %12.0f %12s %7s %12s %7s %8s\n", name, rate, h, ratio(rate, h), a, ratio(rate, a), allocs
}'
