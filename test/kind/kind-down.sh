#!/usr/bin/env bash
# Deletes the kind cluster (and with it everything Palisade put on its nodes).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need docker kind

if ! cluster_exists; then
  log "no cluster $cluster; nothing to do"
  exit 0
fi
kind delete cluster --name "$cluster"
