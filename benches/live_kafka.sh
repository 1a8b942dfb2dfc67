#!/usr/bin/env bash
# Live mode against a real broker (tansu, sqlite storage, on a port of its
# own), each figure next to a reference measured in the same run:
#
#  1. consume rate of `auditwatch run` on a topic of about a million
#     generated events, against a bare rdkafka consumer that only counts
#     the same topic's messages (examples/kafka_count.rs): the broker's floor;
#  2. produce-to-alert latency (p50/p99, hdrhistogram) at a fixed produce rate;
#  3. peak memory after one million principals' worth of state (one event
#     each), against the same run's memory on the first data set.
#
# usage: benches/live_kafka.sh [PRINCIPALS] [DAYS] [RATE]   (defaults: 420 30 5000)
# Needs python3 with confluent-kafka (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
principals=${1:-420}
days=${2:-30}
rate=${3:-5000}
port=${BENCH_KAFKA_PORT:-19192}
work=$(mktemp -d)
export KAFKA_PORT=$port KAFKA_DATA_DIR="$work/kafka"
trap 'deploy/kafka.sh stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cargo build --release --quiet --bin auditwatch --example kafka_count
bin=target/release/auditwatch
bootstrap=$(deploy/kafka.sh start)
produce() { python3 tests/kafka/produce.py --bootstrap "$bootstrap" "$@"; }

echo "== 1. consume rate, $principals principals x $days days"
$bin generate --days "$days" --principals "$principals" --seed 1 --out "$work/data" > /dev/null
deploy/kafka.sh topic bench-in 1
t0=$(date +%s.%N)
n=$(produce --topic bench-in "$work/data/logs")
t1=$(date +%s.%N)
echo "produced $n messages in $(echo "$t1 - $t0" | bc) s (python confluent-kafka, includes sorting)"
target/release/examples/kafka_count "$bootstrap" bench-in "$n" | tee "$work/floor.txt"
/usr/bin/time -f "%e %M" -o "$work/time.txt" \
    $bin run --brokers "$bootstrap" --topic bench-in --group bench-aw --state-dir "$work/state" \
    --alerts-out "$work/alerts.jsonl" --exit-when-idle 2 2> "$work/run.txt"
grep -E "^(records|alerts_written|checkpoints|max_rss_mib)" "$work/run.txt"
floor=$(sed -E 's/.*\(([0-9]+) messages\/s.*/\1/' "$work/floor.txt")
aw=$(sed -nE 's/^records: .*\(([0-9]+) records\/s\)/\1/p' "$work/run.txt")
echo "ratio auditwatch run / bare consumer: $(echo "scale=2; $aw / $floor" | bc)"
echo "checkpoint bytes: $(du -cb "$work"/state/*/* | tail -1 | cut -f1)"

echo "== 2. produce-to-alert latency at $rate records/s"
deploy/kafka.sh topic bench-lat 1
$bin run --brokers "$bootstrap" --topic bench-lat --group bench-lat --state-dir "$work/state-lat" \
    --alerts-out "$work/alerts-lat.jsonl" --exit-when-idle 5 2> "$work/lat.txt" &
runner=$!
sleep 2
$bin generate --days 21 --principals 60 --seed 2 --out "$work/lat" > /dev/null
produce --topic bench-lat --rate "$rate" "$work/lat/logs" > /dev/null
wait $runner
grep -E "^(records|alerts_written|produce_to_alert_ms)" "$work/lat.txt"

echo "== 3. memory with one million principals"
deploy/kafka.sh topic bench-mem 1
produce --topic bench-mem --synthetic-principals 1000000 > /dev/null
$bin run --brokers "$bootstrap" --topic bench-mem --group bench-mem --state-dir "$work/state-mem" \
    --exit-when-idle 2 2> "$work/mem.txt"
grep -E "^(records|max_rss_mib)" "$work/mem.txt"
echo "checkpoint bytes: $(du -cb "$work"/state-mem/*/* | tail -1 | cut -f1)"
