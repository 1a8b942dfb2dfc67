#!/usr/bin/env python3
"""Produce Databricks records to a Kafka topic with a third-party client
(confluent-kafka from PyPI), for auditwatch's live-mode tests and benchmark.

Records are read from JSON-lines files (directories are walked), put in
event-time order as a delivery pipeline would roughly emit them (list
prices first), and produced one record per message, unkeyed, to partition
0 unless --partitions spreads them round-robin.

  produce.py --bootstrap 127.0.0.1:9092 --topic T [--skip N] [--limit N]
             [--rate MSGS_PER_S] [--poison-every N] PATH...

--dump writes the chosen records in production order to a file, so that a
replay of that file sees the same records in the same order.
--as-is keeps the files' own order (to produce records late on purpose).
--skip/--limit take a slice of the ordered records (to produce a data set
in two halves); --poison-every inserts a bad record (not JSON, a wrong
type, a huge message, a 1970 timestamp) after every N records.
Prints the number of messages produced.
"""
import argparse
import datetime
import json
import os
import sys
import time

from confluent_kafka import Producer


def iso_ms(text):
    text = text.replace("Z", "+00:00")
    return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)


def time_of(line):
    """Event time in ms as auditwatch reads it; list prices sort first."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    try:
        if "price_start_time" in rec:
            return -(2**62)
        ts = rec.get("timestamp")
        if ts is not None:
            return int(ts)
        for key in ("event_time", "usage_end_time", "period_end_time"):
            if rec.get(key):
                return iso_ms(rec[key])
    except (ValueError, TypeError):
        return None
    return None


def files_of(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in sorted(os.walk(p)):
                for n in sorted(names):
                    if n.endswith((".json", ".jsonl")):
                        yield os.path.join(root, n)
        else:
            yield p


POISON = [
    b"{not json at all",
    b'{"timestamp": "yesterday", "serviceName": 7, "actionName": ["x"]}',
    b'{"timestamp": 1000, "serviceName": "accounts", "actionName": "login", "userIdentity": {"email": "old@x"}}',
    b"\xff\xfe binary \x00\x01",
    b'{"timestamp": 1704067200000, "padding": "' + b"x" * (2 * 1024 * 1024) + b'"}',
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--poison-every", type=int, default=None)
    ap.add_argument("--synthetic-principals", type=int, default=None,
                    help="instead of PATHs: one query event for each of N distinct principals (state-size benchmark)")
    ap.add_argument("--as-is", action="store_true",
                    help="produce in file order (a delivery pipeline's own lateness), not sorted by event time")
    ap.add_argument("--dump", help="also write the produced records, in order, to this file (JSON lines)")
    ap.add_argument("paths", nargs="*")
    a = ap.parse_args()

    records = []
    for i in range(a.synthetic_principals or 0):
        t = 1704067200000 + i * 3  # 2024-01-01, 3 ms apart
        records.append(json.dumps({
            "version": "2.0", "timestamp": t, "workspaceId": "1234567890123456",
            "sourceIPAddress": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "userAgent": "python-requests/2.31.0",
            "userIdentity": {"email": f"user{i}@bench.example"}, "serviceName": "databrickssql",
            "actionName": "commandSubmit", "requestId": f"bench-{i}",
            "requestParams": {"warehouseId": "wh-1", "commandId": f"c{i}", "commandText": "SELECT 1"},
            "response": {"statusCode": 200},
        }, separators=(",", ":")).encode())
    for f in files_of(a.paths):
        with open(f, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    records.append(line)
    keyed = []
    last = -(2**62)
    for i, line in enumerate(records):
        t = time_of(line)
        if t is None:
            t = last  # keep untimed records where they were
        last = t
        keyed.append((t, i, line))
    if not a.as_is:
        keyed.sort()
    chosen = [line for _, _, line in keyed][a.skip:]
    if a.limit is not None:
        chosen = chosen[: a.limit]

    if a.dump:
        with open(a.dump, "wb") as fh:
            for line in chosen:
                fh.write(line + b"\n")

    p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5, "message.max.bytes": 8 * 1024 * 1024})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    started = time.monotonic()
    sent = 0
    for n, line in enumerate(chosen):
        batch = [line]
        if a.poison_every and (n + 1) % a.poison_every == 0:
            batch.append(POISON[((n + 1) // a.poison_every - 1) % len(POISON)])
        for payload in batch:
            while True:
                try:
                    p.produce(a.topic, payload, partition=sent % a.partitions, on_delivery=report)
                    break
                except BufferError:
                    p.poll(0.05)
            sent += 1
        p.poll(0)
        if a.rate:
            ahead = sent / a.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    left = p.flush(60)
    if left or failures:
        print(f"produce failed: {left} undelivered, errors: {failures[:3]}", file=sys.stderr)
        sys.exit(1)
    print(sent)


if __name__ == "__main__":
    main()
