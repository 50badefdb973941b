#!/usr/bin/env bash
# Local server stack for video-runner: Kafka (KRaft), an S3 server (versitygw)
# and a MongoDB-wire database (FerretDB on SQLite), all on 127.0.0.1.
#
#   bash tools/stack/stack.sh up                      start all (idempotent), wait until they answer
#                                                     (through `video-runner deps wait`: run `make install` first)
#   bash tools/stack/stack.sh down [--purge]          stop what this stack started; --purge drops .stack/
#   bash tools/stack/stack.sh status                  running/stopped, pid, answers or not
#   bash tools/stack/stack.sh start-one NAME         NAME: kafka|s3|mongo (a cluster adds kafka-2, kafka-3;
#   bash tools/stack/stack.sh stop-one  NAME         STACK_TOXIPROXY=1 adds toxiproxy)
#   bash tools/stack/stack.sh clean                   same as down --purge
#   bash tools/stack/stack.sh fetch                   only download/build the servers into the cache
#
# Downloads and builds are cached by version in ${VIDEO_RUNNER_CACHE:-$HOME/.cache/video-runner}.
# State (data, logs, pid files, credentials, env file) lives in .stack/ at the repo root.
# Ports: STACK_KAFKA_PORT, STACK_KAFKA_CONTROLLER_PORT, STACK_S3_PORT, STACK_MONGO_PORT.
# STACK_KAFKA_BROKERS=3: a three-broker KRaft cluster (replication 3, min.insync.replicas 2).
# STACK_TOXIPROXY=1: a Toxiproxy in front of every server (STACK_TOXIPROXY_PORT, its API;
# STACK_TOXIPROXY_PROXY_PORT, the first of its proxies). STACK_DIR: the state directory (.stack).
# See tools/stack/README.md.
set -euo pipefail

KAFKA_VERSION=4.4.0
VERSITYGW_VERSION=1.8.0
FERRETDB_VERSION=1.24.2 # must match tools/ferretdb/go.mod
TOXIPROXY_VERSION=2.12.0

KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${STACK_KAFKA_CONTROLLER_PORT:-9093}
S3_PORT=${STACK_S3_PORT:-9000}
MONGO_PORT=${STACK_MONGO_PORT:-27017}
KAFKA_BROKERS=${STACK_KAFKA_BROKERS:-1}
TOXIPROXY=${STACK_TOXIPROXY:-0}
TOXIPROXY_PORT=${STACK_TOXIPROXY_PORT:-8474}
TOXIPROXY_PROXY_PORT=${STACK_TOXIPROXY_PROXY_PORT:-9470}
HOST=127.0.0.1
S3_ACCESS_KEY_ID=video-runner
READY_TIMEOUT=${STACK_READY_TIMEOUT:-90}
case "$KAFKA_BROKERS" in 1 | 3) ;; *) echo "[stack] ERROR: STACK_KAFKA_BROKERS must be 1 or 3 (a KRaft quorum)" >&2; exit 1 ;; esac
case "$TOXIPROXY" in 0 | 1) ;; *) echo "[stack] ERROR: STACK_TOXIPROXY must be 0 or 1" >&2; exit 1 ;; esac
# Broker 1 is `kafka`, the others `kafka-2`, `kafka-3`; broker N listens on STACK_KAFKA_PORT + 2(N-1)
# and its controller on STACK_KAFKA_CONTROLLER_PORT + 2(N-1).
BROKERS=(kafka)
for ((n = 2; n <= KAFKA_BROKERS; n++)); do BROKERS+=("kafka-$n"); done
SERVERS=("${BROKERS[@]}" s3 mongo)
if ((TOXIPROXY)); then SERVERS=(toxiproxy "${SERVERS[@]}"); fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${VIDEO_RUNNER_CACHE:-$HOME/.cache/video-runner}"
STATE="${STACK_DIR:-$ROOT/.stack}"
[[ $STATE == /* ]] || STATE="$ROOT/$STATE"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
PYTHON="${STACK_PYTHON:-python3}"
# Readiness is asked through the project's own clients (`video-runner deps wait`), so `up`,
# `start-one` and `status` need the virtualenv `make install` builds; `fetch` and `down` do not.
VIDEO_RUNNER="${STACK_VIDEO_RUNNER:-$ROOT/.venv/bin/video-runner}"

# local toolchain only (no toolchain download); -buildvcs=false: builds need no git metadata
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"

# ------------------------------------------------------------------ helpers

say() { printf '[stack] %s\n' "$*"; }
err() { printf '[stack] ERROR: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The broker number of a Kafka server name (kafka: 1, kafka-2: 2, ...); fails for other names.
broker_of() {
  case "$1" in
    kafka) echo 1 ;;
    kafka-[2-9]) ((${1#kafka-} <= KAFKA_BROKERS)) && echo "${1#kafka-}" ;;
    *) return 1 ;;
  esac
}
is_broker() { broker_of "$1" >/dev/null 2>&1; }

port_of() {
  local n
  if n=$(broker_of "$1" 2>/dev/null); then echo $((KAFKA_PORT + 2 * (n - 1))); return 0; fi
  case "$1" in
    s3) echo "$S3_PORT" ;; mongo) echo "$MONGO_PORT" ;;
    toxiproxy) if ((TOXIPROXY)); then echo "$TOXIPROXY_PORT"; else die "toxiproxy runs only with STACK_TOXIPROXY=1"; fi ;;
    *) die "unknown server '$1' (expected ${SERVERS[*]})" ;;
  esac
}

controller_port_of() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($(broker_of "$1") - 1))); }

# Toxiproxy's proxies (STACK_TOXIPROXY=1): s3 on STACK_TOXIPROXY_PROXY_PORT, mongo on the next
# port, broker N on the port N after that; broker N's listener behind its proxy is 10 + N up.
proxy_port_of() {
  case "$1" in
    s3) echo "$TOXIPROXY_PROXY_PORT" ;; mongo) echo $((TOXIPROXY_PROXY_PORT + 1)) ;;
    *) echo $((TOXIPROXY_PROXY_PORT + 1 + $(broker_of "$1"))) ;;
  esac
}
behind_proxy_port_of() { echo $((TOXIPROXY_PROXY_PORT + 10 + $(broker_of "$1"))); }

# host:port,... of every broker, direct or (`bootstrap_of proxied`) through Toxiproxy
bootstrap_of() {
  local name out=() port
  for name in "${BROKERS[@]}"; do
    if [[ ${1:-} == proxied ]]; then port=$(proxy_port_of "$name"); else port=$(port_of "$name"); fi
    out+=("$HOST:$port")
  done
  local IFS=,
  echo "${out[*]}"
}

check_name() { port_of "$1" >/dev/null; }

# A string that must appear in the process command line for a pid file to be trusted
# (guards against pid reuse and against processes of another checkout).
marker_of() {
  if is_broker "$1"; then echo "$STATE/$1/server.properties"; return 0; fi
  case "$1" in
    s3) echo "$STATE/s3data" ;;
    mongo) echo "$STATE/mongo" ;;
    toxiproxy) echo "$STATE/toxiproxy/proxies.json" ;;
  esac
}

PYTHON_RESOLVED=0
need_python() {
  ((PYTHON_RESOLVED)) && return 0
  command -v "$PYTHON" >/dev/null 2>&1 || die "python3 is required (set STACK_PYTHON to another interpreter)"
  # resolve once: version-manager shims (pyenv, asdf) cost ~0.3 s per call
  PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)') || die "cannot run $PYTHON"
  PYTHON_RESOLVED=1
}

need_video_runner() {
  [[ -x "$VIDEO_RUNNER" ]] ||
    die "$VIDEO_RUNNER not found: the stack waits for its servers through the project's own clients (video-runner deps wait); run 'make install' first (or set STACK_VIDEO_RUNNER)"
}

need_java() {
  command -v java >/dev/null 2>&1 || die "java is required for Kafka (Java 17+; Debian: apt-get install openjdk-17-jre-headless)"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ { print $2 }')
  if ! [[ "${v%%.*}" =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    die "Kafka $KAFKA_VERSION needs Java 17+, found '${v:-unknown}'"
  fi
}

need_maven() {
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3.6+) is required to fetch Kafka from Maven Central (Debian: apt-get install maven)"
}

need_go() {
  command -v go >/dev/null 2>&1 || die "go (1.25+) is required to build versitygw and FerretDB"
  local v
  v=$(go env GOVERSION 2>/dev/null | sed -E 's/^go([0-9]+)\.([0-9]+).*/\1 \2/')
  read -r major minor <<<"$v"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || die "cannot read the Go version"
  (( major > 1 || minor >= 25 )) || die "versitygw $VERSITYGW_VERSION needs Go 1.25+, found $(go env GOVERSION)"
}

pidfile() { echo "$PIDS/$1.pid"; }

# Prints the pid if the pid file names a live process of this stack.
live_pid() {
  local f pid
  f=$(pidfile "$1")
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(marker_of "$1")" || return 1
  echo "$pid"
}

# The name `video-runner deps wait` gives a server.
dep_of() { case "$1" in mongo) echo mongodb ;; kafka-*) echo kafka ;; *) echo "$1" ;; esac; }

# Exit 0 if something accepts TCP connections on $HOST:$1 (bash's /dev/tcp: a connect, no more).
port_taken() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null; }

# Exit 0 if process $1 exists and is not a zombie (a zombie never answers).
alive() {
  kill -0 "$1" 2>/dev/null && [[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

show_log() {
  local log="$LOGS/$1.log"
  err "$1 failed; log: $log"
  if [[ -f "$log" ]]; then
    echo "----- last 40 lines of $log -----" >&2
    tail -n 40 "$log" >&2
    echo "-----" >&2
  fi
}

# The servers' addresses, for `video-runner deps wait` and the servers themselves.
export_addresses() {
  export S3_ENDPOINT_URL="http://$HOST:$S3_PORT" S3_ACCESS_KEY_ID
  export KAFKA_BOOTSTRAP_SERVERS="$(bootstrap_of)" MONGO_URI="mongodb://$HOST:$MONGO_PORT/"
}

ensure_credentials() {
  mkdir -p "$STATE"
  local f="$STATE/s3-secret"
  if [[ ! -s "$f" ]]; then
    (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(30))' >"$f.tmp" && mv "$f.tmp" "$f")
  fi
  S3_SECRET_ACCESS_KEY=$(<"$f")
  export S3_SECRET_ACCESS_KEY
  export_addresses
}

write_env() {
  local f="$STATE/env"
  (
    umask 077
    cat >"$f.tmp" <<EOF
# written by tools/stack/stack.sh; source it before running integration tests
export KAFKA_BOOTSTRAP_SERVERS=$(bootstrap_of)
export S3_ENDPOINT_URL=http://$HOST:$S3_PORT
export S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
export S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY
export MONGO_URI=mongodb://$HOST:$MONGO_PORT/
# the stack's own settings, so that stack.sh run from a test finds this stack again
export STACK_DIR=$STATE STACK_KAFKA_BROKERS=$KAFKA_BROKERS STACK_TOXIPROXY=$TOXIPROXY
export STACK_KAFKA_PORT=$KAFKA_PORT STACK_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
export STACK_S3_PORT=$S3_PORT STACK_MONGO_PORT=$MONGO_PORT
EOF
    if ((KAFKA_BROKERS > 1)); then
      cat >>"$f.tmp" <<EOF
# a replicated cluster: topics the services create get replication $KAFKA_BROKERS, min.insync.replicas 2
export KAFKA_TOPIC_REPLICATION=$KAFKA_BROKERS
export KAFKA_TOPIC_MIN_INSYNC_REPLICAS=2
EOF
    fi
    if ((TOXIPROXY)); then
      cat >>"$f.tmp" <<EOF
# the same servers through Toxiproxy (its HTTP API adds latency, cuts, blackholes)
export STACK_TOXIPROXY_PORT=$TOXIPROXY_PORT STACK_TOXIPROXY_PROXY_PORT=$TOXIPROXY_PROXY_PORT
export TOXIPROXY_URL=http://$HOST:$TOXIPROXY_PORT
export TOXIPROXY_KAFKA_BOOTSTRAP_SERVERS=$(bootstrap_of proxied)
export TOXIPROXY_S3_ENDPOINT_URL=http://$HOST:$(proxy_port_of s3)
export TOXIPROXY_MONGO_URI=mongodb://$HOST:$(proxy_port_of mongo)/
EOF
    fi
    mv "$f.tmp" "$f"
  )
}

# Runs a command with its output in a build log; on failure prints the log tail.
logged() {
  local log=$1
  shift
  if ! "$@" >>"$log" 2>&1; then
    err "command failed: $*"
    echo "----- last 40 lines of $log -----" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

# Keeps one previous log once a log passes 20 MiB.
rotate_log() {
  local size
  size=$(stat -c %s "$1" 2>/dev/null || echo 0)
  if ((size > 20 * 1024 * 1024)); then mv -f "$1" "$1.1"; fi
}

# Remembers, for the timing summary, that this run downloaded or built something.
note_built() { echo "$1" >>"$STATE/.built-this-run"; }

built_summary() {
  if [[ -s "$STATE/.built-this-run" ]]; then
    echo "cold: fetched/built $(sort "$STATE/.built-this-run" | paste -sd, -)"
  else
    echo "warm: nothing downloaded or built"
  fi
  rm -f "$STATE/.built-this-run"
}

# One stack command at a time per checkout (e.g. `make -j`, or two terminals).
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  if ! flock -w 1800 9; then die "another stack.sh holds $STATE/.lock"; fi
}

hash_of() { cat "$@" | sha256sum | cut -c1-12; }

# ------------------------------------------------------------------ fetch / build (cached)

kafka_home() { echo "$CACHE/kafka-$KAFKA_VERSION"; }
kafka_pom_hash() { hash_of "$HERE/kafka/pom.xml"; }

ensure_kafka() {
  local home stamp
  home=$(kafka_home)
  stamp="$home/.complete"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$(kafka_pom_hash)" ]]; then return 0; fi
  need_maven
  local t0 tmp log
  t0=$(now)
  mkdir -p "$CACHE" "$LOGS"
  log="$LOGS/build-kafka.log"
  : >"$log"
  tmp=$(mktemp -d "$CACHE/.kafka-$KAFKA_VERSION.XXXXXX")
  say "kafka: fetching kafka_2.13 $KAFKA_VERSION and its dependencies from Maven Central (log: $log)"
  logged "$log" mvn -B -q -Dstyle.color=never -f "$HERE/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" ||
    { rm -rf "$tmp"; return 1; }
  ls "$tmp"/libs/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || { rm -rf "$tmp"; err "kafka jar missing"; return 1; }
  kafka_pom_hash >"$tmp/.complete"
  rm -rf "$home"
  mv "$tmp" "$home"
  say "kafka: fetched in $(since "$t0")s into $home"
  note_built kafka
}

versitygw_bin() { echo "$CACHE/versitygw-$VERSITYGW_VERSION/bin/versitygw"; }

# go_install_cached SERVER DIR PACKAGE@VERSION BUILT NAME: `go install` into $CACHE/DIR/bin once,
# the binary BUILT named NAME there.
go_install_cached() {
  local server=$1 dir=$2 pkg=$3 built=$4 name=$5
  [[ -x "$CACHE/$dir/bin/$name" ]] && return 0
  need_go
  local t0 tmp log
  t0=$(now)
  mkdir -p "$CACHE" "$LOGS"
  log="$LOGS/build-$server.log"
  : >"$log"
  tmp=$(mktemp -d "$CACHE/.$dir.XXXXXX")
  say "$server: building $pkg with go install (minutes cold; log: $log)"
  (cd "$tmp" && GOBIN="$tmp/bin" logged "$log" go install "$pkg") || { rm -rf "$tmp"; return 1; }
  [[ $built == "$name" ]] || mv "$tmp/bin/$built" "$tmp/bin/$name"
  rm -rf "${CACHE:?}/$dir"
  mv "$tmp" "$CACHE/$dir"
  say "$server: built in $(since "$t0")s"
  note_built "$server"
}

ensure_versitygw() {
  go_install_cached s3 "versitygw-$VERSITYGW_VERSION" \
    "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION" versitygw versitygw
}

ferretdb_dir() {
  echo "$CACHE/ferretdb-$FERRETDB_VERSION-$(hash_of "$ROOT/tools/ferretdb/go.mod" "$ROOT/tools/ferretdb/go.sum" "$ROOT/tools/ferretdb/main.go" "$ROOT"/tools/ferretdb/patches/*.patch)"
}

ensure_ferretdb() {
  local dir
  dir=$(ferretdb_dir)
  [[ -x "$dir/ferretdb" ]] && return 0
  need_go
  grep -q "github.com/FerretDB/FerretDB v$FERRETDB_VERSION\$" "$ROOT/tools/ferretdb/go.mod" ||
    { err "tools/ferretdb/go.mod does not require FerretDB v$FERRETDB_VERSION"; return 1; }
  local t0 tmp log
  t0=$(now)
  mkdir -p "$CACHE" "$LOGS"
  log="$LOGS/build-mongo.log"
  : >"$log"
  tmp=$(mktemp -d "$CACHE/.ferretdb.XXXXXX")
  say "mongo: building FerretDB v$FERRETDB_VERSION (tools/ferretdb; a few minutes cold; log: $log)"
  # FerretDB's source from the module proxy, with our patches (tools/ferretdb/patches/), built
  # through a `replace` in a copy of tools/ferretdb: the repository's go.mod stays untouched.
  (
    set -e
    cd "$ROOT/tools/ferretdb"
    src=$(go mod download -json "github.com/FerretDB/FerretDB@v$FERRETDB_VERSION" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    cp -r "$src" "$tmp/FerretDB" && chmod -R u+w "$tmp/FerretDB"
    for p in "$ROOT"/tools/ferretdb/patches/*.patch; do patch -d "$tmp/FerretDB" -p1 --forward --quiet <"$p"; done
    mkdir "$tmp/build" && cp go.mod go.sum main.go "$tmp/build/"
    cd "$tmp/build"
    go mod edit -replace "github.com/FerretDB/FerretDB=$tmp/FerretDB"
    logged "$log" go build -mod=readonly -o "$tmp/ferretdb" .
    rm -rf "$tmp/FerretDB" "$tmp/build"
  ) || { rm -rf "$tmp"; return 1; }
  rm -rf "$dir"
  mv "$tmp" "$dir"
  say "mongo: built FerretDB in $(since "$t0")s"
  note_built mongo
}

toxiproxy_bin() { echo "$CACHE/toxiproxy-$TOXIPROXY_VERSION/bin/toxiproxy-server"; }

ensure_toxiproxy() {
  go_install_cached toxiproxy "toxiproxy-$TOXIPROXY_VERSION" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@v$TOXIPROXY_VERSION" server toxiproxy-server
}

ensure_server() {
  if is_broker "$1"; then ensure_kafka; return; fi
  case "$1" in
    s3) ensure_versitygw ;; mongo) ensure_ferretdb ;; toxiproxy) ensure_toxiproxy ;;
  esac
}

# ------------------------------------------------------------------ start

# The quorum's controllers: 1@127.0.0.1:PORT,... (a cluster), or none (a single node, --standalone).
kafka_voters() {
  local name out=()
  for name in "${BROKERS[@]}"; do out+=("$(broker_of "$name")@$HOST:$(controller_port_of "$name")"); done
  local IFS=,
  echo "${out[*]}"
}

write_kafka_config() {
  local name=$1 dir="$STATE/$1" n port cport rf=1 isr=1 quorum listeners advertised protocols
  n=$(broker_of "$name")
  port=$(port_of "$name")
  cport=$(controller_port_of "$name")
  listeners="PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport"
  advertised="PLAINTEXT://$HOST:$port"
  protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if ((TOXIPROXY)); then
    # a second client listener, reached through Toxiproxy and advertised at the proxy's port, so
    # that clients bootstrapped through the proxy also reach every partition leader through it
    listeners+=",PROXIED://$HOST:$(behind_proxy_port_of "$name")"
    advertised+=",PROXIED://$HOST:$(proxy_port_of "$name")"
    protocols+=",PROXIED:PLAINTEXT"
  fi
  if ((KAFKA_BROKERS > 1)); then
    rf=$KAFKA_BROKERS isr=2
    quorum="controller.quorum.voters=$(kafka_voters)"
  else
    quorum="controller.quorum.bootstrap.servers=$HOST:$cport"
  fi
  mkdir -p "$dir/data"
  cat >"$dir/server.properties.tmp" <<EOF
# generated by tools/stack/stack.sh -- KRaft node $n of $KAFKA_BROKERS, broker and controller combined
process.roles=broker,controller
node.id=$n
$quorum
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=true
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
EOF
  mv "$dir/server.properties.tmp" "$dir/server.properties"
}

# One cluster id for every node of the quorum, made once (Kafka's own random-uuid).
kafka_cluster_id() {
  local f="$STATE/kafka-cluster-id" cid
  # the brokers start in parallel: the first makes the id, the others wait for it and read it
  exec 8>"$STATE/.kafka-cluster-id.lock"
  flock -w 120 8 || { err "kafka: cannot lock $STATE/.kafka-cluster-id.lock"; return 1; }
  if [[ ! -s "$f" ]]; then
    # Kafka's own random cluster id (22 URL-safe base64 characters); the tool logs to stdout too
    cid=$(java -Xmx64m -Dlog4j2.configurationFile="$HERE/kafka/log4j2.xml" -cp "$(kafka_home)/libs/*" \
      kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.log" | tail -n 1)
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || { err "kafka: StorageTool random-uuid printed '$cid'"; return 1; }
    echo "$cid" >"$f.tmp.$$" && mv "$f.tmp.$$" "$f"
  fi
  exec 8>&-
  cat "$f"
}


start_broker() {
  local name=$1 home dir heap
  home=$(kafka_home)
  dir="$STATE/$name"
  write_kafka_config "$name"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cid quorum=(--standalone)
    cid=$(kafka_cluster_id) || return 1
    ((KAFKA_BROKERS > 1)) && quorum=()  # a static quorum: controller.quorum.voters names them
    say "$name: formatting storage (cluster id $cid)"
    logged "$LOGS/$name.log" java -Xmx256m -Dlog4j2.configurationFile="$HERE/kafka/log4j2.xml" \
      -cp "$home/libs/*" kafka.tools.StorageTool format \
      --cluster-id "$cid" --config "$dir/server.properties" "${quorum[@]}" --ignore-formatted || return 1
  fi
  # three JVMs share the machine in a cluster: a smaller heap each
  if ((KAFKA_BROKERS > 1)); then heap=${KAFKA_HEAP_MAX:-384m}; else heap=${KAFKA_HEAP_MAX:-512m}; fi
  local opts=(-Xms128m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.xml" "-Dkafka.logs.dir=$LOGS")
  setsid java "${opts[@]}" -cp "$home/libs/*" kafka.Kafka "$dir/server.properties" \
    >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$name")"
}

# Toxiproxy with one proxy per server, from a config file it reads at start (no toxic: the
# tests add and remove toxics through its HTTP API).
start_toxiproxy() {
  local dir="$STATE/toxiproxy" name sep="" f
  mkdir -p "$dir"
  f="$dir/proxies.json"
  {
    echo "["
    for name in s3 mongo "${BROKERS[@]}"; do
      local upstream
      if is_broker "$name"; then upstream=$(behind_proxy_port_of "$name"); else upstream=$(port_of "$name"); fi
      printf '%s  {"name": "%s", "listen": "%s:%s", "upstream": "%s:%s", "enabled": true}\n' \
        "$sep" "$name" "$HOST" "$(proxy_port_of "$name")" "$HOST" "$upstream"
      sep=","
    done
    echo "]"
  } >"$f.tmp"
  mv "$f.tmp" "$f"
  setsid "$(toxiproxy_bin)" -host "$HOST" -port "$TOXIPROXY_PORT" -config "$f" \
    >>"$LOGS/toxiproxy.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile toxiproxy)"
}

start_server() {
  if is_broker "$1"; then start_broker "$1"; else "start_$1"; fi
}

xattr_ok() {
  "$PYTHON" - "$1" <<'EOF'
import os, sys, tempfile
try:
    with tempfile.NamedTemporaryFile(dir=sys.argv[1]) as f:
        os.setxattr(f.name, "user.video-runner-probe", b"1")
except OSError:
    sys.exit(1)
EOF
}

# --keep-alive: versitygw closes every connection after one request by default, so each of a
# video's frame uploads paid a TCP connect; MinIO and AWS S3 keep connections open.
start_s3() {
  local data="$STATE/s3data" meta=()
  mkdir -p "$data"
  if ! xattr_ok "$data"; then
    mkdir -p "$STATE/s3meta"
    meta=(--sidecar "$STATE/s3meta")
    say "s3: filesystem has no user xattrs; storing object metadata in $STATE/s3meta"
  fi
  ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
    setsid "$(versitygw_bin)" --port "$HOST:$S3_PORT" --region us-east-1 --quiet --keep-alive \
    posix "${meta[@]}" "$data" >>"$LOGS/s3.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile s3)"
}

start_mongo() {
  mkdir -p "$STATE/mongo"
  setsid "$(ferretdb_dir)/ferretdb" -listen "$HOST:$MONGO_PORT" -sqlite-dir "$STATE/mongo" \
    >>"$LOGS/mongo.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile mongo)"
}

# Ensure binaries and start the server unless it already runs (its pid file names a live
# process of this checkout); `wait_ready` then waits until it answers. Runs in a subshell per
# server so that the three come up in parallel.
bring_up() {
  local name=$1 pid
  if pid=$(live_pid "$name"); then
    say "$name: already running (pid $pid)"
    return 0
  fi
  rm -f "$(pidfile "$name")"
  if port_taken "$(port_of "$name")"; then
    err "$name: port $HOST:$(port_of "$name") is already in use by a process this stack did not start"
    return 1
  fi
  ensure_server "$name" || { err "$name: fetch/build failed"; return 1; }
  mkdir -p "$LOGS" "$PIDS"
  rotate_log "$LOGS/$name.log"
  printf '\n===== %s starting %s =====\n' "$(date -Is)" "$name" >>"$LOGS/$name.log"
  start_server "$name" || { show_log "$name"; return 1; }
  say "$name: started (pid $(<"$(pidfile "$name")"))"
}

# Waits until the servers NAME... answer, asked through the project's own clients
# (`video-runner deps wait`: Kafka's metadata, S3's ListBuckets with the buckets `videos` and
# `frames` created, MongoDB's ping), within READY_TIMEOUT; fails early, with the server's log,
# when one of their processes exits first.
# Toxiproxy answers when its API lists the proxies of its config.
toxiproxy_wait() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    if curl -fsS --max-time 2 "http://$HOST:$TOXIPROXY_PORT/proxies" 2>/dev/null | grep -q '"s3"'; then
      echo "toxiproxy: up"
      return 0
    fi
    sleep 0.2
  done
  echo "toxiproxy: down (no answer from http://$HOST:$TOXIPROXY_PORT/proxies)"
  return 1
}

wait_ready() {
  local t0 name deps=() create=() out errs dead="" rc=0 w
  local -A pids=()
  local waiters=()
  t0=$(now)
  out=$(mktemp "$STATE/.deps-out.XXXXXX")
  errs=$(mktemp "$STATE/.deps-err.XXXXXX")
  for name in "$@"; do
    pids[$name]=$(<"$(pidfile "$name")")
    if is_broker "$name"; then
      # each broker on its own: the cluster is up when every node answers, not the first
      KAFKA_BOOTSTRAP_SERVERS="$HOST:$(port_of "$name")" "$VIDEO_RUNNER" deps wait kafka \
        --timeout "$READY_TIMEOUT" 2>>"$errs" 9>&- | sed "s/^kafka:/$name:/" >>"$out" &
      waiters+=($!)
    elif [[ $name == toxiproxy ]]; then
      toxiproxy_wait >>"$out" 9>&- &
      waiters+=($!)
    else
      deps+=("$(dep_of "$name")")
      if [[ $name == s3 ]]; then create=(--create-buckets); fi
    fi
  done
  if ((${#deps[@]})); then
    # the command itself in the background (not a function): $! is its own pid, to stop it by
    BUCKET_VIDEOS=videos BUCKET_FRAMES=frames "$VIDEO_RUNNER" deps wait "${deps[@]}" "${create[@]}" \
      --timeout "$READY_TIMEOUT" >>"$out" 2>>"$errs" 9>&- &
    waiters+=($!)
  fi
  local running=1
  while ((running)); do
    running=0
    for w in "${waiters[@]}"; do kill -0 "$w" 2>/dev/null && running=1; done
    ((running)) || break
    for name in "$@"; do
      if ! alive "${pids[$name]}"; then dead=$name; break 2; fi
    done
    sleep 0.2
  done
  if [[ -n $dead ]]; then
    for w in "${waiters[@]}"; do kill "$w" 2>/dev/null || true; done
    for w in "${waiters[@]}"; do wait "$w" 2>/dev/null || true; done
    err "$dead: its process (pid ${pids[$dead]}) exited before it answered"
    show_log "$dead"
    rm -f "$out" "$errs"
    return 1
  fi
  for w in "${waiters[@]}"; do wait "$w" || rc=$?; done
  # a pipeline's status is its last command's: read the verdicts from the output
  for name in "$@"; do
    local shown
    if is_broker "$name" || [[ $name == toxiproxy ]]; then shown=$name; else shown=$(dep_of "$name"); fi
    grep -q "^$shown: up" "$out" || rc=1
  done
  sed 's/^/[stack] /' "$out"
  if ((rc)); then
    sed 's/^/[stack] /' "$errs" >&2
    for name in "$@"; do
      local shown
      if is_broker "$name" || [[ $name == toxiproxy ]]; then shown=$name; else shown=$(dep_of "$name"); fi
      grep -q "^$shown: up" "$out" || show_log "$name"
    done
  else
    say "${*}: answering after $(since "$t0")s"
  fi
  rm -f "$out" "$errs"
  return "$rc"
}

# ------------------------------------------------------------------ stop

stop_one() {
  local name=$1 pid grace
  if is_broker "$name"; then grace=40; else grace=15; fi
  if ! pid=$(live_pid "$name"); then
    rm -f "$(pidfile "$name")"
    say "$name: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name: did not stop within ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$(pidfile "$name")"
  say "$name: stopped (pid $pid)"
}

# ------------------------------------------------------------------ commands

run_parallel() {
  # run_parallel FUNC NAME... : runs FUNC NAME in background subshells, fails if any failed
  local fn=$1 rc=0 name
  shift
  local -A jobs=()
  for name in "$@"; do
    "$fn" "$name" &
    jobs[$name]=$!
  done
  local failed=()
  for name in "$@"; do
    if ! wait "${jobs[$name]}"; then failed+=("$name"); rc=1; fi
  done
  if ((rc)); then err "failed: ${failed[*]}"; fi
  return $rc
}

# Fail early, with a clear message, on a missing tool.
preflight() {
  local name
  need_python
  for name in "$@"; do
    case "$name" in
      kafka | kafka-*)
        need_java
        [[ -f "$(kafka_home)/.complete" ]] || need_maven
        ;;
      s3) [[ -x "$(versitygw_bin)" ]] || need_go ;;
      toxiproxy)
        [[ -x "$(toxiproxy_bin)" ]] || need_go
        command -v curl >/dev/null 2>&1 || die "curl is required to ask Toxiproxy's API"
        ;;
      mongo) [[ -x "$(ferretdb_dir)/ferretdb" ]] || need_go ;;
    esac
  done
}

cmd_up() {
  local t0
  t0=$(now)
  preflight "${SERVERS[@]}"
  need_video_runner
  take_lock
  rm -f "$STATE/.built-this-run"
  mkdir -p "$LOGS" "$PIDS"
  ensure_credentials
  run_parallel bring_up "${SERVERS[@]}" || die "stack is not up (logs in $LOGS)"
  wait_ready "${SERVERS[@]}" || die "stack is not up (logs in $LOGS)"
  write_env
  say "stack up in $(since "$t0")s ($(built_summary)); env: $STATE/env"
}

cmd_fetch() {
  local t0
  t0=$(now)
  preflight "${SERVERS[@]}"
  take_lock
  rm -f "$STATE/.built-this-run"
  mkdir -p "$LOGS"
  local builds=(kafka s3 mongo)
  ((TOXIPROXY)) && builds+=(toxiproxy)
  run_parallel ensure_server "${builds[@]}" || die "fetch/build failed"
  say "servers ready to start in $(since "$t0")s ($(built_summary); cache: $CACHE)"
}

cmd_down() {
  local purge=0
  for a in "$@"; do
    case "$a" in --purge) purge=1 ;; *) die "down: unknown option '$a'" ;; esac
  done
  [[ -d "$STATE" ]] && take_lock
  run_parallel stop_one "${SERVERS[@]}" || true
  if ((purge)); then
    rm -rf "$STATE"
    say "purged $STATE"
  fi
}

cmd_status() {
  local name pid state answer ok=0 answered=""
  export_addresses
  if [[ -s "$STATE/s3-secret" ]]; then export S3_SECRET_ACCESS_KEY="$(<"$STATE/s3-secret")"; fi
  if [[ -x "$VIDEO_RUNNER" ]]; then
    # one short wait for all three: each answers within it or is reported down
    answered=$("$VIDEO_RUNNER" deps wait --timeout 3 2>/dev/null) || true
    for name in "${BROKERS[@]}"; do
      answered+=$'\n'$(KAFKA_BOOTSTRAP_SERVERS="$HOST:$(port_of "$name")" "$VIDEO_RUNNER" deps wait kafka --timeout 3 2>/dev/null | sed "s/^kafka:/$name:/") || true
    done
    if ((TOXIPROXY)); then
      curl -fsS --max-time 2 "http://$HOST:$TOXIPROXY_PORT/proxies" >/dev/null 2>&1 && answered+=$'\ntoxiproxy: up'
    fi
  else
    err "no $VIDEO_RUNNER: cannot ask the servers (run 'make install')"
  fi
  printf '%-9s %-8s %-8s %-16s %s\n' server state pid address answers
  for name in "${SERVERS[@]}"; do
    if pid=$(live_pid "$name"); then state=running; else state=stopped; pid=-; fi
    if [[ ! -x "$VIDEO_RUNNER" ]]; then
      answer=unknown
    elif grep -q "^$(if is_broker "$name" || [[ $name == toxiproxy ]]; then echo "$name"; else dep_of "$name"; fi): up" <<<"$answered"; then
      answer=yes
    else
      answer=no
    fi
    [[ $state == running && $answer == yes ]] || ok=1
    printf '%-9s %-8s %-8s %-16s %s\n' "$name" "$state" "$pid" "$HOST:$(port_of "$name")" "$answer"
  done
  return $ok
}

cmd_start_one() {
  [[ $# -eq 1 ]] || die "usage: stack.sh start-one ${SERVERS[*]}"
  check_name "$1"
  preflight "$1"
  need_video_runner
  take_lock
  mkdir -p "$LOGS" "$PIDS"
  ensure_credentials
  bring_up "$1" || die "$1 is not up"
  wait_ready "$1" || die "$1 is not up"
  write_env
}

cmd_stop_one() {
  [[ $# -eq 1 ]] || die "usage: stack.sh stop-one ${SERVERS[*]}"
  check_name "$1"
  [[ -d "$STATE" ]] && take_lock
  stop_one "$1"
}

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    clean) cmd_down --purge ;;
    status) cmd_status "$@" ;;
    start-one) cmd_start_one "$@" ;;
    stop-one) cmd_stop_one "$@" ;;
    fetch) cmd_fetch "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
