# shellcheck shell=bash
# Shared by the kind-*.sh scripts (sourced, not run). Sets the repository root, the
# cluster/image names and the artifacts dir, and checks tools.
#   PALISADE_KIND_CLUSTER  cluster name            (default palisade)
#   PALISADE_IMAGE         agent image to build/use (default palisade:dev)
#   KIND_NODE_IMAGE        kindest/node image       (default: kind's default for its version)
#   ARTIFACTS              logs and e2e results     (default /tmp/palisade-kind-artifacts)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# helm from `make setup` (go install) when it is not on PATH.
PATH="$repo/.tools/go/bin:$PATH"
cluster=${PALISADE_KIND_CLUSTER:-palisade}
# shellcheck disable=SC2034 # image and artifacts are used by the scripts sourcing this
image=${PALISADE_IMAGE:-palisade:dev}
# shellcheck disable=SC2034
artifacts=${ARTIFACTS:-/tmp/palisade-kind-artifacts}
script=$(basename "$0" .sh)

log() { echo "$script: $*" >&2; }
die() { log "$*"; exit 1; }

# need TOOL...: exits 2 naming every missing tool.
need() {
  local missing=() t
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing tools: ${missing[*]} (needs: $*; see docs/install.md)"
    exit 2
  fi
  if [[ " $* " == *" docker "* ]] && ! docker info >/dev/null 2>&1; then
    log "docker is installed but its daemon is not reachable (docker info failed)"
    exit 2
  fi
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$cluster"; }

# kubectl against the kind cluster, whatever the current context is.
k() { kubectl --context "kind-$cluster" "$@"; }
