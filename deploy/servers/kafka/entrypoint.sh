#!/bin/sh
# Writes server.properties from the KAFKA_* variables, as apache/kafka does (prefix dropped,
# lower case, "_" -> ".", "__" -> "_", "___" -> "-"), formats the storage once with CLUSTER_ID,
# then execs the broker (PID 1: SIGTERM stops it cleanly).
set -eu
conf=/etc/kafka/server.properties
: "${CLUSTER_ID:=5L6g3nShT-eMCtK--X86sw}"
: "${KAFKA_LOG_DIRS:=/var/lib/kafka/data}"
export KAFKA_LOG_DIRS
env | grep '^KAFKA_' | grep -v '^KAFKA_HEAP_OPTS=' | while IFS='=' read -r name value; do
  key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  printf '%s=%s\n' "$key" "$value"
done >"$conf"
cp="/opt/kafka/libs/*"
# a dynamic quorum (controller.quorum.bootstrap.servers) is formatted --standalone; static voters not
standalone=--standalone
if grep -q '^controller.quorum.voters=' "$conf"; then standalone=""; fi
log="-Dlog4j2.configurationFile=/opt/kafka/log4j2.xml -Dkafka.logs.dir=/var/lib/kafka"
# shellcheck disable=SC2086
java -Xmx256m $log -cp "$cp" kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" \
  --config "$conf" --ignore-formatted $standalone >/dev/null
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -Djava.awt.headless=true $log -cp "$cp" kafka.Kafka "$conf"
