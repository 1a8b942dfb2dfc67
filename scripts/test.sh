#!/usr/bin/env bash
# The test command (README, second command). Installs what the tests need on
# a fresh machine, then runs every test. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Third-party Parquet reader/writer for the Parquet interoperability tests.
# confluent-kafka is the third-party Kafka client the live-mode tests produce with.
# PyYAML reads the deployment manifests in tests/deploy.rs.
if ! python3 -c "import pyarrow, duckdb, confluent_kafka, yaml" 2>/dev/null; then
    echo "installing pyarrow, duckdb, confluent-kafka and PyYAML from PyPI (test-only dependencies)" >&2
    python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb confluent-kafka pyyaml
fi
export AUDITWATCH_REQUIRE_PYARROW=1

# A real Prometheus (Debian's package) scrapes a running instance and runs
# every dashboard query and alerting rule (tests/live_kafka.rs).
if ! command -v prometheus >/dev/null 2>&1; then
    echo "installing prometheus from Debian's packages (test-only dependency)" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
export AUDITWATCH_REQUIRE_PROMETHEUS=1

# systemd-analyze verifies the shipped unit (tests/deploy.rs); it runs
# without systemd as PID 1, so containers need only the package.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing systemd (for systemd-analyze) from Debian's packages (test-only dependency)" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

# A real Kafka-protocol broker for tests/live_kafka.rs (installs tansu on
# first use, about 10 minutes on 2 cores). The tests start it too; starting
# it here shows an install failure at once. Stopped when the tests end.
stop_brokers() {
    for port in 19092 19093; do
        KAFKA_PORT=$port KAFKA_DATA_DIR="target/kafka-test-$port" deploy/kafka.sh stop 2>/dev/null || true
    done
}
trap stop_brokers EXIT
KAFKA_PORT=19092 KAFKA_DATA_DIR=target/kafka-test-19092 deploy/kafka.sh start >/dev/null

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# Doctests, then every benchmark once in test mode (it must still build
# and run), then the unit and integration tests, whose summary ends the run.
cargo test --doc
cargo test --benches
cargo test --lib --bins --tests
# The test cases inside every shipped definition, as a user runs them on
# their own: every definition must have a case that alerts and one that
# stays quiet.
cargo run --quiet -- test-models --require-cases models/
