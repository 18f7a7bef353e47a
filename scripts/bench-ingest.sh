#!/usr/bin/env bash
# Ingest benchmark: workload W2 of scripts/bench-workloads.sh (2,000,000
# events over 10,000 series and 2 days of event time, 8 partitions), where
# ingest rather than bucket closes sets the rate: trendstream run against
# a bare kafka-go Reader on the same topic, measured in one run on the
# embedded broker, ROUNDS times (default 2).
#
#   scripts/bench-ingest.sh
#   EVENTS=200000 RUN_ARGS="--model tsb --changelog=false" scripts/bench-ingest.sh
#
# See scripts/bench-workloads.sh for the settings and the other workloads
# (W1, the anchors' 28-day workload, is the headline).
set -euo pipefail
WORKLOADS=${WORKLOADS:-W2} ROUNDS=${ROUNDS:-2} exec "$(dirname "$0")/bench-workloads.sh"
