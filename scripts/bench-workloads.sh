#!/usr/bin/env bash
# Workload benchmark: trendstream run against a bare kafka-go consumer on
# the same events, for named workloads on the embedded broker, with what
# each run writes to Kafka and Badger per bucket close.
#
#   scripts/bench-workloads.sh                              # W1 W2 W3, trendstream's defaults
#   CONFIGS='; --model tsb --changelog=false' scripts/bench-workloads.sh
#   WORKLOADS=W1 PROFILE=/tmp/prof BREAKDOWN=1 scripts/bench-workloads.sh
#   WORKLOADS=W4 scripts/bench-workloads.sh                 # the scale run, not for CI
#
# Workloads (JSON events of about 110 bytes, 8 partitions; event times rise
# evenly over the span, so every partition closes each bucket in turn):
#   W1  2,000,000 events, 10,000 series, 28 days, daily buckets: every
#       partition closes 27 buckets of 1,250 series (../shared/ANCHORS.md).
#   W2  the same events over 2 days: one close per partition, ingest-bound.
#   W3  hourly buckets (--bucket 1h): 2,000,000 events, 1,000 series, 28
#       days, so every partition closes 671 buckets of 125 series (672,000
#       series closes, 2.5 times W1's). W1's 10,000 series hourly would be
#       6.7 million series closes, about 20 GB of forecasts for the
#       in-memory broker to hold and an hour to run. W3 is also the only one
#       of W1-W3 in which the LSTM trains: it needs window + horizon = 84
#       buckets of history.
#   W4  the scale run: 100,000 series over 14 days, 4 events per series and
#       day (5,600,000 events): 13 closes of 12,500 series per partition,
#       1.3 million series closes, 4.8 times W1's, 10 times its series.
#       About 10 minutes on 2 shared cores, 9 GB peak RSS, 18 GB written to
#       disk. Only when named in WORKLOADS. Series closes, not events, set
#       the cost: 100,000 series over 90 days (8.9 million series closes)
#       did not finish in minutes. With 12,000,000 events and --batch-size
#       10000, after 8 minutes it had committed 1.05 million records and
#       57 of 712 closes, its anonymous RSS was 5.1 GB and growing, and
#       Badger took 61% of its CPU (compactions 34%). At the default
#       --batch-size, a batch then spans 3 days of closes, whose forecasts
#       trendstream holds in memory until it commits: its RSS passed
#       9.5 GB and its consumer group session expired twice. With fewer
#       events per series a batch spans more closes still.
#
# Each workload gets a fresh broker and topic: it pre-produces the events,
# then reads them alternately with the bare consumer (a kafka-go Reader
# per partition, as the anchors measure it) and with trendstream run in
# each configuration (fresh state directory, consumer group, output and
# changelog topics each time), ROUNDS times (default 1), with a last bare
# run; then once with kafka-go's Conn.ReadBatch alone, trendstream's own
# way of fetching. It prints every run's line (see cmd/ingestbench) and a
# table per workload and configuration: mean rates, their ratio, the
# largest peak RSS (VmHWM; in parentheses the largest RssAnon, without the
# Badger files the process maps), bucket closes (of a partition), and
# bytes per close:
#   Kafka   RecordBatch bytes the broker stores for the run's forecast and
#           changelog topics (kfake's log size; the broker counts and trims
#           them every 5 s, as retention would, to bound its memory).
#   Badger  bytes the trendstream process wrote to disk (/proc/PID/io
#           write_bytes: Badger's WAL, L0 flushes, compactions and value
#           log; the process writes no other files). Badger's logical
#           writes, keys and values, are what the changelog carries.
# and the CPU seconds trendstream and the broker used meanwhile (less
# sensitive than rates to other load on the machine; together they show
# how much of the two cores the pair used). Timings on shared machines are
# noisy: compare ratios within one run.
#
# Settings (environment):
#   WORKLOADS  workloads to run, in order (default "W1 W2 W3")
#   CONFIGS    trendstream run flag sets separated by ';', an empty one
#              meaning the defaults (default: RUN_ARGS, else the defaults)
#   ROUNDS     runs of each configuration per workload (default 1)
#   EVENTS, SERIES  override every workload's events and series (smoke tests)
#   PROFILE    directory: profile the first round's runs into
#              PROFILE/<workload>-c<config>/ (cpu.pprof for the whole run,
#              heap.pprof at its end, heap-peak.pprof at peak RSS)
#   BREAKDOWN  1: after the first round's runs, read their changelog and
#              forecast topics and print the bytes by state key kind
#   KEEP       directory to keep the run lines and table in (default: none)
#   REFS       git refs (e.g. "main HEAD"): build trendstream at each and run
#              every configuration with each build, so that a change is
#              measured against its predecessor in one run (default: the
#              working tree alone). Configurations are numbered refs first.
set -euo pipefail
cd "$(dirname "$0")/.."

# workload prints a workload's events, series, days and further
# trendstream flags.
workload() {
	case $1 in
	W1) echo 2000000 10000 28 ;;
	W2) echo 2000000 10000 2 ;;
	W3) echo 2000000 1000 28 --bucket 1h ;;
	W4) echo 5600000 100000 14 ;;
	*)
		echo "unknown workload $1 (have W1 W2 W3 W4)" >&2
		return 1
		;;
	esac
}

workloads=${WORKLOADS:-W1 W2 W3}
IFS=';' read -r -a configs <<<"${CONFIGS-${RUN_ARGS:-}}"
[ ${#configs[@]} -gt 0 ] || configs=("")
for w in $workloads; do workload "$w" >/dev/null; done

work=$(mktemp -d)
broker=
cleanup() {
	if [ -n "$broker" ]; then
		kill "$broker" 2>/dev/null || true
		wait "$broker" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/ingestbench" ./cmd/ingestbench
# bins[i] and labels[i] are the trendstream build and its label of run i,
# args[i] its flags.
bins=()
labels=()
args=()
if [ -z "${REFS:-}" ]; then
	go build -o "$work/trendstream" ./cmd/trendstream
	for c in "${configs[@]}"; do
		bins+=("$work/trendstream")
		labels+=("${c:-(defaults)}")
		args+=("$c")
	done
else
	for ref in $REFS; do
		src=$work/src-$ref
		git worktree add -q --detach "$src" "$ref"
		(cd "$src" && go build -o "$work/trendstream-$ref" ./cmd/trendstream)
		git worktree remove --force "$src"
		for c in "${configs[@]}"; do
			bins+=("$work/trendstream-$ref")
			labels+=("$ref $(git rev-parse --short "$ref") ${c:-(defaults)}")
			args+=("$c")
		done
	done
fi
out=$work/out
: >"$out"
for i in "${!bins[@]}"; do
	echo "config=$((i + 1)) flags=${labels[$i]}" | tee -a "$out"
done

# tag prefixes each line with the workload and configuration.
tag() { sed -u "s/^/workload=$1 config=$2 /" | tee -a "$out"; }

for w in $workloads; do
	read -r events series days flags <<<"$(workload "$w")"
	events=${EVENTS:-$events}
	series=${SERIES:-$series}
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	brokers=127.0.0.1:$port
	"${bins[0]}" broker --listen "$brokers" --partitions 8 --log-level warn &
	broker=$!
	# A loaded machine may take the broker seconds to listen.
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	echo "workload=$w events=$events series=$series days=$days flags=${flags:-(none)}" | tee -a "$out"
	"$work/ingestbench" produce -brokers "$brokers" -events "$events" -series "$series" -days "$days" | tag "$w" 0
	for round in $(seq "${ROUNDS:-1}"); do
		"$work/ingestbench" bare -brokers "$brokers" | tag "$w" 0
		for i in "${!bins[@]}"; do
			c=$((i + 1))
			opts=(-trim 5s -timeout 90m)
			if [ "$round" = 1 ] && [ -n "${PROFILE:-}" ]; then
				opts+=(-profile "$PROFILE/$w-c$c")
			fi
			if [ "$round" = 1 ] && [ "${BREAKDOWN:-}" = 1 ]; then
				opts+=(-breakdown)
			fi
			rm -rf "$work/state"
			"$work/ingestbench" run -brokers "$brokers" -broker-pid "$broker" -bin "${bins[$i]}" \
				-state "$work/state" -args "$flags ${args[$i]}" "${opts[@]}" | tag "$w" "$c" ||
				echo "workload=$w config=$c run failed (see above); no row for it" | tee -a "$out"
			if [ "$round" = 1 ] && [ -n "${PROFILE:-}" ]; then
				dir=$PROFILE/$w-c$c
				go tool pprof -proto "$dir"/cpu-*.pprof >"$dir/cpu.pprof" 2>/dev/null && rm "$dir"/cpu-*.pprof
			fi
		done
	done
	"$work/ingestbench" bare -brokers "$brokers" | tag "$w" 0
	"$work/ingestbench" conn -brokers "$brokers" | tag "$w" 0
	kill "$broker"
	wait "$broker" 2>/dev/null || true
	broker=
done

awk '
function field(name,   i, a) {
	for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) { split($i, a, "="); return a[2] }
	return ""
}
/^config=/ { cfg[field("config")] = substr($0, index($0, "flags=") + 6); next }
/^workload=[^ ]* events=/ { order[++nw] = field("workload"); next }
$3 == "bare" { w = field("workload"); bare[w] += field("per_second"); nbare[w]++ }
$3 == "conn" { conn[field("workload")] = field("per_second") }
$3 == "trendstream" {
	k = field("workload") SUBSEP field("config"); n[k]++
	rate[k] += field("per_second")
	if (field("peak_rss_mib") > rss[k]) rss[k] = field("peak_rss_mib")
	if (field("peak_anon_mib") > anon[k]) anon[k] = field("peak_anon_mib")
	closes[k] += field("closes"); fcs[k] += field("forecasts")
	kafka[k] += field("out_bytes") + field("changelog_bytes") + field("dlq_bytes")
	outb[k] += field("out_bytes"); clb[k] += field("changelog_bytes")
	disk[k] += field("disk_write_bytes")
	cpu[k] += field("cpu_seconds"); bcpu[k] += field("broker_cpu_seconds")
}
END {
	print ""
	print "| workload | config | records/s | bare Reader records/s | ratio | peak RSS MiB (anon) | closes | forecasts | Kafka KiB/close (forecasts + changelog) | Badger disk KiB/close | CPU s trendstream / broker |"
	print "|---|---|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= nw; i++) {
		w = order[i]; b = bare[w] / nbare[w]
		for (c = 1; (w SUBSEP c) in n || c in cfg; c++) {
			k = w SUBSEP c
			if (!(k in n)) continue
			m = n[k]; cl = closes[k] / m
			printf "| %s | %s | %.0f | %.0f | %.3f | %.0f (%.0f) | %.0f | %.0f | %.0f (%.0f + %.0f) | %.0f | %.1f / %.1f |\n",
				w, cfg[c], rate[k] / m, b, rate[k] / m / b, rss[k], anon[k], cl, fcs[k] / m,
				kafka[k] / m / cl / 1024, outb[k] / m / cl / 1024, clb[k] / m / cl / 1024, disk[k] / m / cl / 1024,
				cpu[k] / m, bcpu[k] / m
		}
	}
	print ""
	for (i = 1; i <= nw; i++) {
		w = order[i]
		printf "%s: bare Reader mean of %d runs; kafka-go Conn.ReadBatch alone %.0f records/s\n", w, nbare[w], conn[w]
	}
}
' "$out" | tee "$work/table"
if [ -n "${KEEP:-}" ]; then
	mkdir -p "$KEEP"
	cp "$out" "$KEEP/runs.txt"
	cp "$work/table" "$KEEP/table.md"
fi
