#!/bin/sh
# Creates the namespace the gateway and the workers use (NAMESPACE, retention RETENTION) on
# the Temporal server at TEMPORAL_ADDRESS, with the temporal CLI of the admin-tools image:
# temporalio/server creates no namespace (auto-setup used to). Safe on every `up`: an
# existing namespace is left as it is.
set -eu

# The frontend's port opens before the cluster answers, and the first calls after SERVING
# can still fail: retry for up to 2 minutes.
tries=0
retry() {
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "temporal-namespace: $1 (Temporal at $TEMPORAL_ADDRESS), giving up" >&2
    exit 1
  fi
  sleep 2
}

until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  retry "not healthy"
done
until temporal operator namespace describe --namespace "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  if temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" \
    --description "Tempest" --address "$TEMPORAL_ADDRESS"; then
    echo "temporal-namespace: created $NAMESPACE (retention $RETENTION)"
    exit 0
  fi
  retry "cannot create namespace $NAMESPACE"
done
echo "temporal-namespace: $NAMESPACE exists"
