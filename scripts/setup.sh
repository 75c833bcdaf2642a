#!/usr/bin/env bash
# Set up randommask on a fresh machine: a virtual environment with PyTorch (CPU wheel 2.13.0 first,
# so nothing pulls a multi-GB CUDA build), the package with its test tools, and real human DNA
# (chromosome 20, GRCh37) from the Debian package vt-examples for the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".[dev]"
echo "installed: $(.venv/bin/randommask --help >/dev/null && echo randommask) into .venv"

# Human chromosome 20 for `randommask demo` (skipped if already there).
target=data/genomes/20.fa.gz
if [ -s "$target" ]; then
  echo "data: $target already present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "data: apt-get not found; run the demo on your own FASTA with: .venv/bin/randommask demo --fasta FILE"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && apt-get download vt-examples >/dev/null 2>&1); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
  fi
  (cd "$tmp" && apt-get download vt-examples >/dev/null 2>&1) || {
    echo "data: could not download the Debian package vt-examples;" \
         "run the demo on your own FASTA with: .venv/bin/randommask demo --fasta FILE"
    exit 0
  }
fi
dpkg-deb -x "$tmp"/vt-examples_*.deb "$tmp/x"
mkdir -p data/genomes
cp "$tmp/x/usr/share/doc/vt/examples/ref/20.fa.gz" "$target.part"
mv "$target.part" "$target"
echo "data: human chromosome 20 (GRCh37, from Debian vt-examples) in $target"
