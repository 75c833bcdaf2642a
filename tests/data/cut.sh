#!/usr/bin/env bash
# Re-cut the committed test excerpts (tests/data/README.md says what they are and where they come from).
#   tests/data/cut.sh GUE_ROOT CHR20_FA_GZ
# GUE: for each task and split, the header and 200 rows taken every floor(n/200)-th row from the first
# (rows 0, s, 2s, ... of the n data rows), so that label-sorted files keep both classes.
# Genome: bases 30,000,001-30,100,000 of human chromosome 20 (GRCh37), 60 bases a line, gzip -n -9.
set -euo pipefail
gue=${1:?GUE root folder}
chr20=${2:?chromosome 20 FASTA (gzip)}
here=$(cd "$(dirname "$0")" && pwd)
rows=200
for task in prom/prom_core_all EMP/H3 tf/0 mouse/0; do
  mkdir -p "$here/GUE/$task"
  for split in train dev test; do
    src="$gue/$task/$split.csv"
    [ -f "$src" ] || continue
    n=$(($(wc -l < "$src") - 1))
    step=$((n / rows))
    awk -v step="$step" -v rows="$rows" 'NR == 1 { print; next } (NR - 2) % step == 0 && c < rows { print; c++ }' \
      "$src" > "$here/GUE/$task/$split.csv"
  done
done
mkdir -p "$here/genomes"
{
  echo ">20:30000001-30100000 Homo sapiens chromosome 20 (GRCh37), excerpt"
  gzip -dc "$chr20" | awk 'NR > 1' | tr -d '\n' | cut -c 30000001-30100000 | fold -w 60
} | gzip -n -9 > "$here/genomes/chr20-excerpt.fa.gz"
