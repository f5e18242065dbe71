#!/usr/bin/env bash
# Make sure the services CI needs answer; start them with the machine's own commands if not.
set -uo pipefail

wait_for() {  # name, command
    for _ in $(seq 1 30); do eval "$2" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "ci: $1 is not reachable" >&2; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
wait_for PostgreSQL "pg_isready -h 127.0.0.1 -p 5432"
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'spine_ci'" \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE spine_ci" >/dev/null

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_for Redis "redis-cli -h 127.0.0.1 ping"

if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    rabbitmq-server -detached || true
fi
wait_for RabbitMQ "(exec 3<>/dev/tcp/127.0.0.1/5672)"
