#!/usr/bin/env bash
# Create each bank's SCRAM user and the ACLs that let it write its own topic and nothing else.
# Input: a file of lines "CODE PASSWORD" (CODE as bank codes, [A-Z0-9]{4,12}); '#' comments.
# Idempotent: run it again after adding a bank. Uses Kafka's own tools, over the INTERNAL
# listener (whose principal is a super user on the compose network).
set -euo pipefail
BANKS_FILE=${1:-/init/banks.txt}
BOOTSTRAP=${KAFKA_INTERNAL_BOOTSTRAP:-kafka:9092}
BIN=/opt/kafka/bin
[ -f "$BANKS_FILE" ] || { echo "no $BANKS_FILE: no bank users created"; exit 0; }
while read -r code password _; do
  [[ -z "${code:-}" || "$code" == \#* ]] && continue
  if [[ ! "$code" =~ ^[A-Z0-9]{4,12}$ ]] || [[ -z "${password:-}" ]]; then
    echo "skipping a malformed line for '$code': expected 'CODE PASSWORD'" >&2
    continue
  fi
  user="bank-$code"
  topic="bank.$code.txns"
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type users \
    --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$password]" >/dev/null
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --add --allow-principal "User:$user" \
    --operation Write --operation Describe --topic "$topic" >/dev/null
  echo "bank $code: user $user may write $topic only"
done < "$BANKS_FILE"
