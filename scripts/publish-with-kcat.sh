#!/usr/bin/env bash
# Publish transactions to a bank topic with kcat (Debian package `kcat`), keyed by enterprise id.
#
#   scripts/publish-with-kcat.sh ICBC0001 events.ndjson      # one JSON event per line
#   KAFKA=kafka-1:9092 scripts/publish-with-kcat.sh ICBC0001 - < events.ndjson
#
# For Apache Kafka: kcat 1.7 (librdkafka 2.0) cannot parse the embedded Tansu broker's
# ApiVersions answer, so against `creditflow up` use any other client (kafka-python, kafkajs,
# confluent-kafka). kcat's default partitioner differs from Java's; creditflow re-routes.
set -euo pipefail
bank=${1:?usage: $0 BANKCODE FILE|-}
file=${2:--}
kafka=${KAFKA:-${CREDITFLOW_KAFKA_BOOTSTRAP:-localhost:9092}}
command -v kcat >/dev/null || { echo "kcat is not installed (apt-get install kcat)" >&2; exit 2; }

# key<TAB>value lines: the key is the event's enterprise_id.
awk '{ if (match($0, /"enterprise_id"[ ]*:[ ]*"[^"]+"/)) {
         key = substr($0, RSTART, RLENGTH); sub(/.*:[ ]*"/, "", key); sub(/"$/, "", key)
         print key "\t" $0 } else { print "\t" $0 } }' "$file" \
  | kcat -P -b "$kafka" -t "bank.${bank}.txns" -K $'\t'
