#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# examples/data/make_kjv.sh — regenerates kjv_train.txt and kjv_val.txt, the
# byte-level corpus of the GPT-2 example, from the King James Version text in
# Debian's bible-kjv-text package (public domain; see README.md).
#
# Deterministic: the same package version gives byte-identical files. The
# line width is pinned (-l 79, bible's default when COLUMNS is unset) because
# bible wraps verses to $COLUMNS - 1 otherwise.
#
# Cleaning: strip trailing whitespace on every line, drop blank lines before
# the first heading, collapse runs of more than 2 blank lines to 2. Book and
# chapter headings ("Genesis 1") and verse numbers stay as they are.
# Split: at the first chapter heading (a line "<Book> <n>" after a blank line)
# that starts at or after 95% of the cleaned text's bytes; the heading and all
# that follows go to kjv_val.txt. cat kjv_train.txt kjv_val.txt = cleaned text.
#
# Usage: examples/data/make_kjv.sh [OUTDIR]   (default: this script's folder)
set -eu
export LC_ALL=C

out=${1:-$(cd "$(dirname "$0")" && pwd)}

if ! command -v bible >/dev/null 2>&1; then
    echo "make_kjv.sh: 'bible' not found; installing the Debian package bible-kjv" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y bible-kjv
    else
        sudo apt-get install -y bible-kjv
    fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bible -l 79 "Gen1:1-Rev22:21" > "$tmp/raw.txt"

sed 's/[[:space:]]*$//' "$tmp/raw.txt" |
    awk 'NF == 0 { if (started) blank++; next }
         { started = 1; if (blank > 2) blank = 2
           for (; blank > 0; blank--) print ""
           print }' > "$tmp/clean.txt"

total=$(wc -c < "$tmp/clean.txt")
awk -v total="$total" -v train="$tmp/train.txt" -v val="$tmp/val.txt" '
    BEGIN { dest = train; offset = 0; prev_blank = 0 }
    dest == train && prev_blank && offset * 100 >= total * 95 &&
        /^([1-3] )?[A-Z][A-Za-z ]* [0-9]+$/ { dest = val }
    { print > dest; offset += length($0) + 1; prev_blank = (length($0) == 0) }
' "$tmp/clean.txt"

cat "$tmp/train.txt" "$tmp/val.txt" | cmp -s - "$tmp/clean.txt" || {
    echo "make_kjv.sh: train + val do not concatenate to the cleaned text" >&2
    exit 1
}
[ -s "$tmp/val.txt" ] || { echo "make_kjv.sh: no chapter heading after 95%" >&2; exit 1; }

mv "$tmp/train.txt" "$out/kjv_train.txt"
mv "$tmp/val.txt" "$out/kjv_val.txt"
echo "kjv_train.txt $(wc -c < "$out/kjv_train.txt") bytes, kjv_val.txt" \
     "$(wc -c < "$out/kjv_val.txt") bytes; val starts at: $(head -n 1 "$out/kjv_val.txt")"
