#!/usr/bin/env bash
# Render a `c360 report` HTML file to a PNG of the whole page with headless
# Chromium (Debian: `apt-get install -y chromium`).
#
#   scripts/report_png.sh REPORT.html OUT.png [WIDTH=1400]
#
# Chromium's --screenshot takes the window, not the page, so the page's
# height at WIDTH is measured first: a copy of the report with one line of
# script that writes its height into the title, read back with --dump-dom.
# The report itself has no script; only that throwaway copy does.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH=1400]" >&2
  exit 2
fi
report=$1
out=$2
width=${3:-1400}
[[ -f $report ]] || { echo "$0: no such file: $report" >&2; exit 2; }
[[ $width =~ ^[0-9]+$ ]] || { echo "$0: WIDTH must be a number of pixels" >&2; exit 2; }

browser=
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
[[ -n $browser ]] || { echo "$0: no Chromium found (apt-get install -y chromium)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }
src=$(abs "$report")

run() {
  # Its own profile each time (no first-run state, no lock on a shared one).
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --no-default-browser-check --disable-extensions \
    --force-device-scale-factor=1 --user-data-dir="$tmp/profile" "$@" 2>/dev/null
}

# 1. The page's height at this width.
{
  sed 's#</body></html>#<script>document.title="height:"+Math.ceil(document.documentElement.scrollHeight)</script></body></html>#' "$src"
} >"$tmp/measure.html"
height=$(run --window-size="$width,1000" --virtual-time-budget=2000 --dump-dom "file://$tmp/measure.html" |
  grep -o 'height:[0-9]*' | head -1 | cut -d: -f2 || true)
if ! [[ $height =~ ^[0-9]+$ ]] || ((height < 100)); then
  echo "$0: could not measure the page; using 12000 px" >&2
  height=12000
fi

# 2. The screenshot of the whole page.
run --window-size="$width,$height" --screenshot="$tmp/page.png" "file://$src" >/dev/null
mv "$tmp/page.png" "$out"
echo "wrote $out (${width}x${height}, $(($(stat -c %s "$out") / 1024)) KiB)"
