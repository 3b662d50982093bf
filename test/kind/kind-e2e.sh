#!/usr/bin/env bash
# Runs the upstream Kubernetes NetworkPolicy e2e tests (test/e2e/network/netpol, the
# "Netpol" specs) against the kind cluster with Palisade installed.
#
# e2e.test and ginkgo come from the Kubernetes test tarball of exactly the cluster's
# version, https://dl.k8s.io/<version>/kubernetes-test-linux-<arch>.tar.gz (checked
# against its published .sha512), cached in $E2E_CACHE.
#   E2E_FOCUS     ginkgo focus regexp   (default Netpol)
#   E2E_SKIP      ginkgo skip regexp    (default: SCTP specs, which need the kernel's sctp
#                 module on every node, plus [Serial] and [Disruptive] specs)
#   E2E_PARALLEL  ginkgo processes      (default 6; 1 runs e2e.test directly)
#   E2E_CACHE     download cache        (default ~/.cache/palisade-e2e)
# Results: $ARTIFACTS/e2e/ (JUnit), e2e.log, agent logs, Palisade objects, kind logs.
# `kind-e2e.sh --print-filters` prints the focus and skip regexps and exits.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Single quotes: inside ${VAR:-default} bash would strip the backslashes and turn
# \[Serial\] into a character class that skips nearly every spec.
default_skip='SCTP|\[Serial\]|\[Disruptive\]'
focus=${E2E_FOCUS:-Netpol}
skip=${E2E_SKIP:-$default_skip}
if [ "${1:-}" = "--print-filters" ]; then
  printf 'focus=%s\nskip=%s\n' "$focus" "$skip"
  exit 0
fi
need docker kind kubectl curl tar sha512sum

cluster_exists || die "no kind cluster $cluster; run make kind-up and make kind-install first"
mkdir -p "$artifacts/e2e"

version=$(k get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read the cluster version (got '$version')"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no Kubernetes test binaries for $(uname -m)" ;;
esac

cache="${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade-e2e}/$version-$arch"
if [ ! -x "$cache/e2e.test" ] || [ ! -x "$cache/ginkgo" ]; then
  url="https://dl.k8s.io/$version/kubernetes-test-linux-$arch.tar.gz"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  log "downloading $url"
  curl -fsSL --retry 3 -o "$tmp/test.tar.gz" "$url"
  want=$(curl -fsSL --retry 3 "$url.sha512" | cut -d' ' -f1)
  got=$(sha512sum "$tmp/test.tar.gz" | cut -d' ' -f1)
  [ "$want" = "$got" ] || die "checksum mismatch for $url"
  tar -xzf "$tmp/test.tar.gz" -C "$tmp" --strip-components=3 \
    kubernetes/test/bin/e2e.test kubernetes/test/bin/ginkgo
  mkdir -p "$cache"
  mv "$tmp/e2e.test" "$tmp/ginkgo" "$cache/"
  rm -rf "$tmp"
  trap - EXIT
fi
log "e2e.test $version from $cache"

# shellcheck disable=SC2317 # runs from the EXIT trap
collect() {
  local status=$?
  log "collecting logs into $artifacts"
  mkdir -p "$artifacts/cluster"
  {
    k get nodes -o wide
    k get pods -A -o wide
    k get pep -A -o wide
    k get palisadenodes -o wide
  } > "$artifacts/cluster/state.txt" 2>&1 || true
  k get palisadenodes -o yaml > "$artifacts/cluster/palisadenodes.yaml" 2>&1 || true
  local pod node
  for pod in $(k -n kube-system get pods -l app.kubernetes.io/component=agent -o name 2>/dev/null); do
    node=$(k -n kube-system get "$pod" -o jsonpath='{.spec.nodeName}' 2>/dev/null || echo unknown)
    k -n kube-system logs "$pod" --all-containers --timestamps > "$artifacts/cluster/agent-$node.log" 2>&1 || true
    k -n kube-system logs "$pod" -c agent --previous > "$artifacts/cluster/agent-$node.previous.log" 2>/dev/null || true
  done
  kind export logs "$artifacts/kind-logs" --name "$cluster" >/dev/null 2>&1 || true
  exit "$status"
}
trap collect EXIT

kubeconfig="$artifacts/kubeconfig"
kind get kubeconfig --name "$cluster" > "$kubeconfig"
parallel=${E2E_PARALLEL:-6}
e2e_args=(--kubeconfig="$kubeconfig" --provider=local --report-dir="$artifacts/e2e"
  --disable-log-dump=true --dump-logs-on-failure=false)

log "running focus='$focus' skip='$skip' with $parallel process(es)"
set +e
if [ "$parallel" -gt 1 ]; then
  "$cache/ginkgo" --nodes="$parallel" --focus="$focus" --skip="$skip" --timeout=2h --no-color \
    "$cache/e2e.test" -- "${e2e_args[@]}" 2>&1 | tee "$artifacts/e2e.log"
else
  "$cache/e2e.test" --ginkgo.focus="$focus" --ginkgo.skip="$skip" --ginkgo.timeout=2h \
    --ginkgo.no-color "${e2e_args[@]}" 2>&1 | tee "$artifacts/e2e.log"
fi
status=${PIPESTATUS[0]}
set -e
log "e2e finished with status $status (results in $artifacts)"
exit "$status"
