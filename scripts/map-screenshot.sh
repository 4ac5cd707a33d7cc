#!/usr/bin/env bash
# The README's picture of q35's map: `pymem map` rendered by Debian's chromium
# headless, as tests/test_htmlmap.py loads it; pngquant (if installed) keeps
# the PNG small.  Usage: scripts/map-screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/img/map-q35.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m pymem map --as memory -o "$tmp/map.html"
chromium --headless --disable-gpu --no-sandbox --user-data-dir="$tmp/profile" \
    --hide-scrollbars --window-size=960,660 --screenshot="$tmp/shot.png" \
    "file://$tmp/map.html#region=system/pci/ahci" 2>/dev/null
if command -v pngquant >/dev/null; then
    pngquant --quality 60-85 --force --output "$out" "$tmp/shot.png"
else
    cp "$tmp/shot.png" "$out"
fi
echo "$out"
