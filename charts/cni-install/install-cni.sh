#!/bin/sh
# Installs the staged Palisade CNI plugin (see stage-cni.mjs) into a node's CNI binary
# directory. Run by the agent DaemonSet's init container as
#   install-cni.sh /opt/palisade/cni /host/opt/cni/bin
# and by test/unit/chart/cni-install.test.ts against a temporary directory.
#
# Atomic for the container runtime, which may exec DST/palisade at any moment:
#   1. the runtime tree palisade.d-<hash> is copied under a temporary name, then renamed
#      (a directory with that content hash is complete or absent, never partial);
#   2. the launcher is copied to a temporary name, then renamed over DST/palisade, so
#      the runtime sees the old launcher or the new one, never a partial file;
#   3. only then are other palisade.d-* trees removed.
# Exits non-zero when anything fails; DST/palisade is then the launcher it was before
# (a complete new runtime tree may remain and is reused or removed by the next run).
set -eu

fail() { echo "install-cni: $*" >&2; exit 1; }

[ $# -eq 2 ] || fail "usage: install-cni.sh SRC DST"
src=$1
dst=$2
[ -f "$src/palisade" ] || fail "no launcher at $src/palisade (not a staged tree?)"
[ -d "$dst" ] || fail "destination $dst is not a directory"

tree=""
for d in "$src"/palisade.d-*; do
  [ -d "$d" ] || continue
  [ -z "$tree" ] || fail "more than one runtime tree in $src"
  tree=${d##*/}
done
[ -n "$tree" ] || fail "no palisade.d-* runtime tree in $src"
grep -q "$tree" "$src/palisade" || fail "launcher in $src does not use $tree"

tmp_tree="$dst/.$tree.tmp.$$"
tmp_launcher="$dst/.palisade.tmp.$$"
trap 'rm -rf "$tmp_tree" "$tmp_launcher"' EXIT

if [ -d "$dst/$tree" ]; then
  echo "install-cni: $tree already installed" >&2
else
  cp -R "$src/$tree" "$tmp_tree"
  mv "$tmp_tree" "$dst/$tree"
fi

cp "$src/palisade" "$tmp_launcher"
chmod 0755 "$tmp_launcher"
mv -f "$tmp_launcher" "$dst/palisade"

# Old runtime trees and temporaries left by an interrupted install.
for d in "$dst"/palisade.d-* "$dst"/.palisade.d-*.tmp.* "$dst"/.palisade.tmp.*; do
  [ -e "$d" ] || continue
  [ "$d" = "$dst/$tree" ] || rm -rf "$d"
done
echo "install-cni: installed $dst/palisade ($tree)" >&2
