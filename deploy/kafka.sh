#!/usr/bin/env bash
# A real Kafka-protocol broker on 127.0.0.1 for the tests and the demo.
#
#   deploy/kafka.sh start                 install tansu if missing, start it, wait, print the bootstrap address
#   deploy/kafka.sh stop                  stop it (its data stays on disk)
#   deploy/kafka.sh restart               stop, then start on the same data
#   deploy/kafka.sh topic NAME PARTITIONS create a topic (an existing one is left as it is)
#   deploy/kafka.sh status                print the bootstrap address if the broker answers, else exit 1
#
# Environment:
#   KAFKA_PORT      port (default 9092)
#   KAFKA_DATA_DIR  where the broker keeps its SQLite store and its pid/log
#                   (default: target/kafka-PORT under the repository)
#
# Why tansu: there is no Docker engine and no Apache Kafka package on these
# machines. tansu is an Apache-2.0, Kafka-compatible broker on crates.io; with
# `--storage-engine sqlite://` it keeps topics and committed offsets across a
# broker restart (its `memory://` engine would lose them). See
# ../shared/KAFKA.md for what was measured with it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${KAFKA_PORT:-9092}"
data="${KAFKA_DATA_DIR:-$repo/target/kafka-$port}"
mkdir -p "$data"
data="$(cd "$data" && pwd)" # absolute: the broker runs from inside it
bootstrap="127.0.0.1:$port"
tansu_version="0.6.0"

say() { printf 'kafka.sh: %s\n' "$*" >&2; }

tansu_bin() {
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [ -x "$HOME/.cargo/bin/tansu" ]; then
        echo "$HOME/.cargo/bin/tansu"
    else
        return 1
    fi
}

install_tansu() {
    if tansu_bin >/dev/null; then return 0; fi
    say "tansu not found: installing tansu $tansu_version from crates.io (about 10 minutes on 2 cores)"
    # libsql gives the sqlite:// storage engine; the default features start no storage at all.
    cargo install tansu --version "$tansu_version" --locked --features libsql,dynostore >&2
}

# Whether something accepts TCP connections on the port.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# Whether the broker answers Kafka requests (a metadata/list request).
answering() {
    "$(tansu_bin)" topic list --broker "tcp://$bootstrap" >/dev/null 2>&1
}

start() {
    install_tansu
    mkdir -p "$data"
    if [ -f "$data/pid" ] && kill -0 "$(cat "$data/pid")" 2>/dev/null && answering; then
        say "already running (pid $(cat "$data/pid"))"
        echo "$bootstrap"
        return 0
    fi
    if listening; then
        say "port $port is taken by another process; set KAFKA_PORT"
        exit 1
    fi
    # The storage path is relative to the working directory.
    (
        cd "$data"
        nohup "$(tansu_bin)" broker \
            --listener-url "tcp://$bootstrap" \
            --advertised-listener-url "tcp://$bootstrap" \
            --storage-engine "sqlite://tansu.db" \
            >>"$data/broker.log" 2>&1 &
        echo $! >"$data/pid"
    )
    for _ in $(seq 1 300); do
        if answering; then
            say "broker up on $bootstrap (pid $(cat "$data/pid"), data in $data)"
            echo "$bootstrap"
            return 0
        fi
        if ! kill -0 "$(cat "$data/pid")" 2>/dev/null; then
            say "broker exited; last lines of $data/broker.log:"
            tail -20 "$data/broker.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    say "broker did not answer within 30 s; see $data/broker.log"
    exit 1
}

stop() {
    if [ -f "$data/pid" ]; then
        local pid
        pid="$(cat "$data/pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$data/pid"
        say "stopped"
    fi
}

topic() {
    local name="$1" partitions="$2"
    if "$(tansu_bin)" topic list --broker "tcp://$bootstrap" 2>/dev/null | grep -q "\"name\":\"$name\""; then
        say "topic $name exists"
        return 0
    fi
    "$(tansu_bin)" topic create "$name" --broker "tcp://$bootstrap" --partitions "$partitions" >&2
    say "topic $name created with $partitions partitions"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    topic)
        [ $# -eq 3 ] || { say "usage: $0 topic NAME PARTITIONS"; exit 2; }
        topic "$2" "$3"
        ;;
    status)
        if answering; then echo "$bootstrap"; else exit 1; fi
        ;;
    *)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
