#!/usr/bin/env bash
# Ingest benchmark: trendstream run against a bare kafka-go consumer on the
# same topic, measured in one run on the embedded broker.
#
#   scripts/bench-ingest.sh            # 2,000,000 events over 10,000 series, 8 partitions
#   EVENTS=200000 scripts/bench-ingest.sh
#
# It pre-produces the events, then reads the topic alternately with the bare
# consumer (a kafka-go Reader per partition, as ../shared/ANCHORS.md
# measures) and with trendstream run (decode, validate, dedup, window,
# Badger commit with offsets; a fresh state directory each time), ROUNDS
# times each (default 2) with a last bare run, and prints the mean rates,
# their ratio and trendstream's peak RSS. It also reads the topic once with
# kafka-go's connection-level API alone, which trendstream's fetcher uses,
# and prints trendstream's rate against that too. Timings on shared
# machines are noisy: compare ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-2000000}
series=${SERIES:-10000}
work=$(mktemp -d)
go build -o "$work/trendstream" ./cmd/trendstream
go build -o "$work/ingestbench" ./cmd/ingestbench

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
brokers=127.0.0.1:$port
"$work/trendstream" broker --listen "$brokers" --partitions 8 --log-level warn &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
sleep 1

"$work/ingestbench" produce -brokers "$brokers" -events "$events" -series "$series" | tee "$work/out"
for round in $(seq "${ROUNDS:-2}"); do
	"$work/ingestbench" bare -brokers "$brokers" | tee -a "$work/out"
	"$work/ingestbench" run -brokers "$brokers" -bin "$work/trendstream" -state "$work/state$round" -args "${RUN_ARGS:-}" | tee -a "$work/out"
done
"$work/ingestbench" bare -brokers "$brokers" | tee -a "$work/out"
"$work/ingestbench" conn -brokers "$brokers" | tee -a "$work/out"

awk '
/^bare/ { for (i = 1; i <= NF; i++) if ($i ~ /^per_second=/) { split($i, a, "="); bare += a[2]; n++ } }
/^conn/ { for (i = 1; i <= NF; i++) if ($i ~ /^per_second=/) { split($i, a, "="); conn = a[2] } }
/^trendstream/ { for (i = 1; i <= NF; i++) { if ($i ~ /^per_second=/) { split($i, a, "="); ts += a[2]; m++ } if ($i ~ /^peak_rss_mib=/) { split($i, b, "="); if (b[2] > rss) rss = b[2] } } }
END {
	bare /= n; ts /= m
	printf "bare kafka-go Reader %.0f records/s (mean of %d runs), trendstream %.0f records/s (mean of %d runs): ratio %.2f, trendstream peak RSS %d MiB\n", bare, n, ts, m, ts / bare, rss
	printf "kafka-go Conn.ReadBatch alone (how trendstream fetches) %.0f records/s: trendstream at %.2f of it\n", conn, ts / conn
}
' "$work/out"
