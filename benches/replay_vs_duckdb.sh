#!/usr/bin/env bash
# End-to-end replay rate of `auditwatch replay` against the analyst's
# alternative measured in the same run: DuckDB (2 threads) reading the same
# delivered JSON files and computing hourly per-principal z-scores in SQL.
#
# usage: benches/replay_vs_duckdb.sh [PRINCIPALS] [DAYS]   (defaults: 420 30, about 1.1 M events)
# Needs python3 with duckdb (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
principals=${1:-420}
days=${2:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/release/auditwatch
$bin generate --days "$days" --principals "$principals" --seed 1 --out "$work/data" > "$work/generate.txt"
events=$(awk '/^wrote/ {print $2}' "$work/generate.txt")
bytes=$(du -sb "$work/data/logs" | cut -f1)
echo "data set: $events events, $((bytes / 1000000)) MB, $principals principals, $days days"

best() { sort -n | head -1; }
for run in 1 2 3; do
  /usr/bin/time -f "%e %M" -o "$work/time.$run" $bin replay "$work/data/logs" --no-progress --alerts-out "$work/alerts.jsonl" > /dev/null
done
aw_s=$(cat "$work"/time.* | awk '{print $1}' | best)
aw_rss=$(cat "$work"/time.* | awk '{print $2}' | best)
# The same replay on one thread (decode and scoring on one core), so the
# gain from the second core is measured in the same run; the alert file
# must be the same bytes.
for run in 1 2 3; do
  /usr/bin/time -f "%e %M" -o "$work/one.$run" $bin replay "$work/data/logs" --threads 1 --no-progress --alerts-out "$work/alerts-one.jsonl" > /dev/null
done
one_s=$(cat "$work"/one.* | awk '{print $1}' | best)
cmp -s "$work/alerts.jsonl" "$work/alerts-one.jsonl" || { echo "alerts differ between --threads 1 and the default" >&2; exit 1; }
cores=$(nproc)
# The same replay without the event-time sort (what live mode sees): the
# price of order independence, measured in the same run.
for run in 1 2 3; do
  /usr/bin/time -f "%e %M" -o "$work/unsorted.$run" $bin replay "$work/data/logs" --as-delivered --no-progress --alerts-out "$work/alerts-unsorted.jsonl" > /dev/null
done
un_s=$(cat "$work"/unsorted.* | awk '{print $1}' | best)
un_rss=$(cat "$work"/unsorted.* | awk '{print $2}' | best)

# DuckDB: the same delivered audit files (the largest part of the data), the
# fields it needs only, hourly counts per principal, and a z-score of each
# hour against the principal's mean and standard deviation.
cat > "$work/duck.py" <<PY
import duckdb, time, sys
con = duckdb.connect()
con.execute("SET threads = 2")
glob = "$work/data/logs/audit-logs/*/*/*.json"
n = con.execute(f"SELECT count(*) FROM read_json('{glob}', format='newline_delimited', columns={{'timestamp':'BIGINT'}})").fetchone()[0]
best = None
for _ in range(3):
    t = time.time()
    con.execute(f"""
      WITH ev AS (
        SELECT userIdentity.email AS principal, date_trunc('hour', to_timestamp(timestamp / 1000)) AS hour
        FROM read_json('{glob}', format='newline_delimited',
             columns={{'timestamp':'BIGINT','userIdentity':'STRUCT(email VARCHAR)','serviceName':'VARCHAR','actionName':'VARCHAR'}})
        WHERE serviceName = 'databrickssql' AND actionName = 'commandSubmit'),
      hourly AS (SELECT principal, hour, count(*) AS n FROM ev GROUP BY ALL),
      scored AS (SELECT *, (n - avg(n) OVER w) / nullif(stddev_samp(n) OVER w, 0) AS z
                 FROM hourly WINDOW w AS (PARTITION BY principal))
      SELECT count(*) FROM scored WHERE z > 4""").fetchall()
    s = time.time() - t
    best = s if best is None else min(best, s)
print(n, best)
PY
read -r duck_events duck_s < <(python3 "$work/duck.py")

awk -v e="$events" -v s="$un_s" -v rss="$un_rss" 'BEGIN {
  printf "auditwatch replay --as-delivered (no sort): %.2f s = %.2f M events/s, max RSS %.0f MB\n", s, e / s / 1e6, rss / 1024 }'
awk -v e="$events" -v s="$one_s" -v n="$aw_s" -v c="$cores" 'BEGIN {
  printf "auditwatch replay --threads 1: %.2f s = %.2f M events/s; --threads %d is %.2fx faster (same alert file)\n", s, e / s / 1e6, c, s / n }'
awk -v e="$events" -v s="$aw_s" -v rss="$aw_rss" -v de="$duck_events" -v ds="$duck_s" 'BEGIN {
  aw = e / s; dk = de / ds;
  printf "auditwatch replay : %d events in %.2f s = %.2f M events/s, max RSS %.0f MB (all shapes, all stages, alerts written)\n", e, s, aw / 1e6, rss / 1024;
  printf "duckdb (2 threads): %d events in %.2f s = %.2f M events/s (delivered audit files only, hourly z-scores)\n", de, ds, dk / 1e6;
  printf "ratio auditwatch / duckdb: %.2f\n", aw / dk;
}'
