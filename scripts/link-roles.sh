#!/usr/bin/env bash
# Make every plugin role of the suite's executable a name in DIR: a hard
# link to it (a symlink when DIR is on another filesystem), each made under
# a temporary name and renamed into place, so a runtime never finds a
# plugin name missing while an install runs. cnitool is not a plugin and is
# linked where commands go (the Makefile does that).
#
# usage: scripts/link-roles.sh SUITE_BINARY DIR
set -euo pipefail
BIN=$1
DIR=$2
mkdir -p "$DIR"
for role in $("$BIN" --list | grep -vx cnitool); do
    tmp="$DIR/.$role.$$"
    rm -f "$tmp"
    # Already this file (the same path, or a hard link to it: mv refuses
    # to move a link onto another link of the same file).
    if [ "$BIN" -ef "$DIR/$role" ]; then
        continue
    fi
    ln -f "$BIN" "$tmp" 2>/dev/null || ln -s "$(realpath "$BIN")" "$tmp"
    mv -f "$tmp" "$DIR/$role"
done
