#!/usr/bin/env bash
# The test command (README, second command). Installs what the tests need on
# a fresh machine, then runs every test. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Third-party Parquet reader/writer for the Parquet interoperability tests.
if ! python3 -c "import pyarrow, duckdb" 2>/dev/null; then
    echo "installing pyarrow and duckdb from PyPI (test-only dependencies)" >&2
    python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb
fi
export AUDITWATCH_REQUIRE_PYARROW=1

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# Doctests, then every benchmark once in test mode (it must still build
# and run), then the unit and integration tests, whose summary ends the run.
cargo test --doc
cargo test --benches
cargo test --lib --bins --tests
