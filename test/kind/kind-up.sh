#!/usr/bin/env bash
# Creates the kind cluster from kind-config.yaml (default CNI disabled, one control plane,
# two workers). Nodes stay NotReady until `make kind-install` installs Palisade.
# Idempotent: an existing cluster of the same name is left as it is.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need docker kind kubectl

if cluster_exists; then
  log "cluster $cluster exists; leaving it (make kind-down removes it)"
  exit 0
fi
args=(create cluster --name "$cluster" --config "$repo/kind-config.yaml" --wait 0s)
[ -n "${KIND_NODE_IMAGE:-}" ] && args+=(--image "$KIND_NODE_IMAGE")
kind "${args[@]}"
log "cluster $cluster is up (nodes NotReady until a CNI is installed): $(k get nodes --no-headers | wc -l) nodes"
