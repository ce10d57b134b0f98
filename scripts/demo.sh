#!/usr/bin/env bash
# Backs up a sample directory to a local repository, backs it up again (incremental),
# restores the latest snapshot and verifies that the restore is identical to the source.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN="$PWD/.venv/bin/cairn"
PY="$PWD/.venv/bin/python"
WORK="${CAIRN_DEMO_DIR:-$PWD/.demo}"
rm -rf "$WORK"
mkdir -p "$WORK"
export CAIRN_REPOSITORY="$WORK/repo"
export CAIRN_PASSWORD="${CAIRN_PASSWORD:-demo password, use your own}"
export CAIRN_CACHE_DIR="$WORK/cache"

echo "== building a sample directory in $WORK/sample"
"$PY" scripts/make_sample.py "$WORK/sample"

echo "== cairn init"
"$CAIRN" init --pack-size 4M
echo "== cairn backup (first)"
"$CAIRN" backup "$WORK/sample" --tag demo
echo "== cairn backup (unchanged: nothing is read again)"
"$CAIRN" backup "$WORK/sample" --tag demo
echo "== one file changes"
echo "one more line" >> "$WORK/sample/notes/todo.txt"
"$CAIRN" backup "$WORK/sample" --tag demo
echo "== cairn snapshots"
"$CAIRN" snapshots
echo "== cairn stats"
"$CAIRN" stats
echo "== cairn restore latest --verify"
"$CAIRN" restore "latest:$WORK/sample" --target "$WORK/restored" --verify
echo "== comparing the restore with the source (content and metadata)"
"$PY" scripts/compare_trees.py "$WORK/sample" "$WORK/restored"
echo "demo finished: the restore is identical to the source"
