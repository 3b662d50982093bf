#!/usr/bin/env bash
# Builds the agent image, loads it into the kind cluster, installs the chart with it and
# waits until every agent is rolled out, every node is Ready and CoreDNS (the first pods
# that need a pod network) is available. On failure, dumps what explains it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need docker kind kubectl helm

cluster_exists || die "no kind cluster $cluster; run make kind-up first"
mkdir -p "$artifacts"

log "building $image"
DOCKER_BUILDKIT=1 docker build -f "$repo/.ci/Dockerfile" -t "$image" "$repo"
log "loading $image into $cluster"
kind load docker-image "$image" --name "$cluster"

# shellcheck disable=SC2317 # runs from the ERR trap
diagnose() {
  log "install failed; state follows (also in $artifacts/install-diagnostics.txt)"
  {
    k -n kube-system get ds,pods -o wide
    k -n kube-system describe ds palisade-agent
    k -n kube-system logs -l app.kubernetes.io/component=agent --all-containers --prefix --tail=200
    k get nodes -o wide
  } 2>&1 | tee "$artifacts/install-diagnostics.txt" >&2 || true
}
trap diagnose ERR

# Split repo:tag at the last colon after the last slash (a registry may carry a port).
if [[ "${image##*/}" == *:* ]]; then
  repo_part=${image%:*}
  tag_part=${image##*:}
else
  repo_part=$image
  tag_part=latest
fi
helm upgrade --install palisade "$repo/charts/palisade" \
  --kube-context "kind-$cluster" --namespace kube-system \
  --set image.repository="$repo_part" --set image.tag="$tag_part" \
  --set image.pullPolicy=Never

log "waiting for the agents"
k -n kube-system rollout status ds/palisade-agent --timeout=5m
log "waiting for the nodes"
k wait --for=condition=Ready nodes --all --timeout=5m
log "waiting for CoreDNS (pods on the Palisade network)"
k -n kube-system rollout status deploy/coredns --timeout=5m
trap - ERR
k get pep -A
log "palisade installed on $cluster"
