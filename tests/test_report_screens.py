"""Headless-Chromium screenshots of the report's first screen, its figures and the leaderboard.

The first screen (1280 x 900) must hold the whole "At a glance" table (one verdict per area); the
figures section and ``deepsight-compare``'s leaderboard.html must render without errors, blocked
resources or broken images. Screenshots are kept as test artifacts in ``$DEEPSIGHT_TEST_ARTIFACTS``
(default: the test's tmp folder) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from report_helpers import make_run
from test_report_browser import _BROWSER, _probe

from deepsight.report import write_report
from deepsight.report.compare import main as compare_main

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(_BROWSER is None, reason="headless Chromium not installed (apt-get install chromium)")]

W, H = 1280, 900
_GEOMETRY = """<script>
window.addEventListener('load', function () {
  var t = document.querySelector('#at-a-glance table');
  var rows = t ? t.querySelectorAll('tr').length : 0;
  var out = document.createElement('pre'); out.id = '__geom';
  out.textContent = JSON.stringify({bottom: t ? t.getBoundingClientRect().bottom : -1, rows: rows,
                                    height: window.innerHeight, width: window.innerWidth});
  document.body.appendChild(out);
});
</script>"""


def _artifacts(tmp_path: Path) -> Path:
    d = Path(os.environ.get("DEEPSIGHT_TEST_ARTIFACTS") or tmp_path / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [_BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={W},{H}", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _screenshot(tmp_path: Path, url: str, out: Path) -> Path:
    proc = _chromium(tmp_path, f"--screenshot={out}", url)
    assert out.is_file(), proc.stderr[-2000:]
    return out


def _png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """Width, height and a sample of distinct pixels of an 8-bit RGB(A) PNG (enough to tell blank from drawn)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, _, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = 4 if ctype == 6 else 3
    stride = 1 + w * bpp
    colours = set()
    for y in range(0, h, 37):  # filter type 0 rows read as-is; others still vary, which is all we need
        row = raw[y * stride + 1:(y + 1) * stride]
        colours.update(row[x:x + bpp] for x in range(0, len(row), bpp * 53))
    return w, h, colours


def test_first_screen_figures_and_leaderboard_screenshots(tmp_path):
    art = _artifacts(tmp_path)
    root = tmp_path / "outputs" / "2026-12-02"
    make_run(root / "10-00-00_other", model="other-model", seed=3)
    run = root / "11-00-00_tiny"
    results = make_run(run, seed=1)
    write_report(run, results)

    # the whole verdict table is on the first screen
    page = run / "report.html"
    probed = tmp_path / "geom.html"
    probed.write_text(page.read_text().replace("</head>", _GEOMETRY + "</head>", 1))
    dom = _chromium(tmp_path, "--dump-dom", probed.as_uri()).stdout
    m = re.search(r'<pre id="__geom">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    geom = json.loads(m.group(1))
    assert geom["rows"] == 5  # header + four areas
    assert 0 < geom["bottom"] <= geom["height"] and geom["height"] >= 700, geom  # inside the viewport

    first = _screenshot(tmp_path, page.as_uri(), art / "report_first_screen.png")
    figs_only = tmp_path / "figures_only.html"  # the same page with everything but its figures hidden
    figs_only.write_text(page.read_text().replace(
        "</head>", "<style>body > :not(figure) { display: none !important; }</style></head>", 1))
    figures = _screenshot(tmp_path, figs_only.as_uri(), art / "report_figures.png")
    for shot in (first, figures):
        w, h, colours = _png_pixels(shot)
        assert (w, h) == (W, H) and len(colours) > 3, shot  # drawn, not blank
    assert first.read_bytes() != figures.read_bytes()

    # every figure decodes, nothing blocked or failed, on the report page
    found = _probe(page, tmp_path)
    assert found["errs"] == [] and found["resources"] == [] and all(i["ok"] for i in found["imgs"])
    assert len(found["imgs"]) == sum(len(s.get("figures", [])) for s in results["scans"].values())

    # the leaderboard page
    board_dir = tmp_path / "board"
    assert compare_main([str(tmp_path / "outputs"), "-o", str(board_dir)]) == 0
    board = board_dir / "leaderboard.html"
    found = _probe(board, tmp_path)
    assert found["errs"] == [] and found["resources"] == [] and found["title"] == "DeepSight leaderboard"
    shot = _screenshot(tmp_path, board.as_uri(), art / "leaderboard_first_screen.png")
    w, h, colours = _png_pixels(shot)
    assert (w, h) == (W, H) and len(colours) > 3
