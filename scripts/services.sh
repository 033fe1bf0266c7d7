#!/bin/sh
# Make sure the Redis and MariaDB the integration tests use are running on 127.0.0.1:
# start them if installed and stopped, install them from Debian's packages if missing (root
# only), and fail loudly if neither works. Tests never skip for a missing service in CI.
#
#   REDIS_PORT (6379), MARIADB_PORT (3306), RABBITMQ_PORT (5672)
set -eu
REDIS_PORT="${REDIS_PORT:-6379}"
MARIADB_PORT="${MARIADB_PORT:-3306}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"

listening() {  # listening PORT: is something accepting connections on 127.0.0.1:PORT?
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

wait_for() {  # wait_for NAME PORT [TRIES]: TRIES half-seconds (default 60)
    i=0
    while ! listening "$2"; do
        i=$((i + 1))
        if [ "$i" -ge "${3:-60}" ]; then echo "services: $1 did not come up on port $2" >&2; exit 1; fi
        sleep 0.5
    done
}

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "services: $* missing and cannot be installed here (needs root and apt-get)" >&2
        exit 1
    fi
    echo "services: installing $* from Debian's packages" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
    listening "$REDIS_PORT" && return 0
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    echo "services: starting redis-server on port $REDIS_PORT" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis "$REDIS_PORT"
}

ensure_mariadb() {
    listening "$MARIADB_PORT" && return 0
    [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
    echo "services: starting mariadbd" >&2
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for MariaDB "$MARIADB_PORT"
}

# The scale-out tests run the Dramatiq broker on RabbitMQ (guest/guest, localhost only).
ensure_rabbitmq() {
    listening "$RABBITMQ_PORT" && return 0
    [ -x /usr/sbin/rabbitmq-server ] || apt_install rabbitmq-server
    echo "services: starting rabbitmq-server" >&2
    rabbitmq-server -detached
    wait_for RabbitMQ "$RABBITMQ_PORT" 240
}

# Not a service: the compose file's tests validate it with Debian's docker-compose (no engine needed).
ensure_docker_compose() {
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
}

ensure_redis
ensure_mariadb
ensure_rabbitmq
ensure_docker_compose
echo "services: Redis on $REDIS_PORT, MariaDB on $MARIADB_PORT and RabbitMQ on $RABBITMQ_PORT are up" >&2
