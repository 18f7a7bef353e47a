#!/usr/bin/env bash
# One daily bucket close of a partition with CLOSE_SERIES series (default
# 100,000) on one core with the default forecasting configuration: the LSTM
# trains on every series, every forecaster forecasts every one and the
# records are encoded. The target is under a minute.
#
#   scripts/bench-close.sh
#   CLOSE_SERIES=10000 scripts/bench-close.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GOMAXPROCS=1 CLOSE_SERIES=${CLOSE_SERIES:-100000} \
	go test -run xxx -bench 'BenchmarkClose$' -benchtime 1x -benchmem ./pipeline/ |
	awk '/^BenchmarkClose/ {
		for (i = 2; i <= NF; i++) v[$(i)] = $(i-1)
		printf "close of %s series on one core: %.1f s (%d train steps); the next close, with carried LSTM states: %.1f s\n", v["series"], v["ns/op"] / 1e9, v["train_steps"], v["next_close_s"]
	} { print }'
