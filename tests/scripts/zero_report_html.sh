#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-report --html on a real run: GPT-2 d4 on 2 ranks at stage 3 writes its
# reports; the page parses (html.parser for the page, xml.etree for every
# SVG), holds one plot per rank and the category legend, and headless
# Chromium renders it to a non-empty PNG and a DOM with the same plots,
# printing no error about the page. Without chromium: exit 77 (skipped).
source "$(dirname "$0")/common.sh"
ZR=$1 TRAIN=$2
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: no chromium on PATH (scripts/setup.sh installs Debian's package)"
    exit 77
fi
"$CHROMIUM" --version 2>/dev/null | tail -1

run_ranks 2 "$TRAIN" --model d4 --stage 3 --steps 3 --val-every 0 --sample-len 0 \
    --mem-report "$WORK/r%r.json" || { cat "$WORK/out"; fail "train_gpt2 --mem-report"; }
"$ZR" --html "$WORK/report.html" "$WORK/r0.json" "$WORK/r1.json" >"$WORK/table" 2>&1 ||
    { cat "$WORK/table"; fail "zero-report --html"; }
cat "$WORK/table"

python3 - "$WORK/report.html" <<'EOF' || fail "the page is not well-formed or misses a part"
import re, sys, xml.etree.ElementTree as ET
from html.parser import HTMLParser

class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.seen = [], []
    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag not in ("meta", "br", "hr", "img", "link", "input"):
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        self.seen.append(tag)
    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

page = open(sys.argv[1]).read()
tags = Tags()
tags.feed(page)
tags.close()
assert tags.stack == [], tags.stack
assert "<script" not in page and "http://" not in page.replace(
    'xmlns="http://www.w3.org/2000/svg"', ""), "not self-contained"
svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
assert len(svgs) == 2, len(svgs)
for svg in svgs:
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    areas = [p for p in root.iter(ns + "polygon") if p.get("class") == "area"]
    assert areas, "no stacked area"
    legend = [g for g in root.iter(ns + "g") if g.get("class") == "legend"]
    names = [t.text for t in legend[0].iter(ns + "text")]
    for cat in ("param", "param-gather", "grad-bucket", "optim", "comm", "activation"):
        assert cat in names, (cat, names)
    assert root.find(f".//{ns}line[@class='plan']") is not None, "no planned-peak line"
assert page.count("<table") == 1 and "tier peak" in page
print(f"page: well-formed, {len(svgs)} plots with legends")
EOF

# --- headless Chromium: a screenshot and the DOM ---------------------------------
chrome() { # OUTPUT-FLAG LOG: renders the page offline
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$WORK/chromium" --enable-logging=stderr --v=0 \
        --window-size=1400,2000 "$1" "file://$WORK/report.html" 2>"$2"
}
# Container noise (no D-Bus, no GPU, the launcher script) is not about the
# page; console messages and uncaught errors are.
page_errors() {
    grep -E 'CONSOLE|Uncaught|ERROR:.*(file://|blink|render|page)' "$1" |
        grep -vE 'dbus/|/gpu/|vaapi|sandbox' || true
}
rc=0
chrome --screenshot="$WORK/shot.png" "$WORK/shot.log" >"$WORK/shot.out" || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/shot.log"; fail "chromium --screenshot: exit $rc"; }
python3 - "$WORK/shot.png" <<'EOF' || fail "the screenshot is not a non-empty PNG"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert w > 0 and h > 0 and len(data) > 10000, (w, h, len(data))
print(f"screenshot: {w}x{h}, {len(data)} bytes")
EOF
chrome --dump-dom "$WORK/dom.log" >"$WORK/dom.html" || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/dom.log"; fail "chromium --dump-dom: exit $rc"; }
svgs=$(grep -o '<svg' "$WORK/dom.html" | wc -l)
[ "$svgs" -eq 2 ] || fail "the rendered DOM has $svgs <svg> elements, not one per rank (2)"
grep -q 'class="legend"' "$WORK/dom.html" || fail "no category legend in the rendered DOM"
grep -q '>param-gather<' "$WORK/dom.html" || fail "the legend does not name param-gather"
errors=$(page_errors "$WORK/shot.log"; page_errors "$WORK/dom.log")
[ -z "$errors" ] || { echo "$errors"; fail "chromium reported errors about the page"; }
echo "PASS"
