"""Open report.html in headless Chromium: it renders with no console errors, no blocked or failed
resource, no script run from model text, and every image decodes (naturalWidth > 0).

A copy of the page gets a probe in <head>: a strict Content-Security-Policy (only data: images and
inline styles; anything fetched from elsewhere is a violation), hooks that record errors, console.error
calls, alert() calls and CSP violations, and on load a <pre id="__probe"> with the findings, read back
from ``chromium --headless --dump-dom``. A negative control checks that the probe catches a broken
image, an external image and a script error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_helpers import make_run

from deepsight.report import write_report

pytestmark = pytest.mark.browser

_BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)

_PROBE = """<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<script>
window.__errs = []; window.__alerts = 0;
window.alert = function () { window.__alerts++; };
console.error = function () { window.__errs.push('console.error: ' + Array.from(arguments).join(' ')); };
window.addEventListener('error', function (e) {
  window.__errs.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || '?'));
}, true);
document.addEventListener('securitypolicyviolation', function (e) { window.__errs.push('csp: ' + e.blockedURI); });
window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (i) {
    return {ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight};
  });
  var out = document.createElement('pre'); out.id = '__probe';
  out.textContent = JSON.stringify({imgs: imgs, errs: window.__errs, alerts: window.__alerts,
    scripts: document.scripts.length, title: document.title,
    resources: performance.getEntriesByType('resource').map(function (r) { return r.name.slice(0, 60); })});
  document.body.appendChild(out);
});
</script>
"""


def _probe(page: Path, tmp_path: Path) -> dict:
    html = page.read_text(encoding="utf-8")
    assert html.count("<head>") == 1
    probed = tmp_path / f"probe_{page.stem}.html"
    probed.write_text(html.replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")
    cmd = [_BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"probe missing (rc={proc.returncode}): {proc.stderr[-2000:]}"
    import html as html_mod

    return json.loads(html_mod.unescape(m.group(1)))


@pytest.mark.skipif(_BROWSER is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_cleanly_in_chromium(tmp_path):
    run = tmp_path / "run"
    results = make_run(run)
    write_report(run, json.loads((run / "results.json").read_text()))
    found = _probe(run / "report.html", tmp_path)
    n_figs = sum(len(s.get("figures", [])) for s in results["scans"].values())
    assert len(found["imgs"]) == n_figs == 5
    assert all(i["ok"] for i in found["imgs"]), found["imgs"]
    assert found["errs"] == []
    assert found["alerts"] == 0 and found["scripts"] == 1  # only the probe; model text ran nothing
    assert found["resources"] == []  # nothing fetched
    assert found["title"] == "DeepSight audit: tiny-llama"


@pytest.mark.skipif(_BROWSER is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_probe_detects_broken_images_external_resources_and_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title></head><body>"
                    '<img src="data:image/png;base64,AAAA"><img src="https://example.invalid/x.png">'
                    "<script>undefinedFunction();</script></body></html>")
    found = _probe(page, tmp_path)
    assert [i["ok"] for i in found["imgs"]] == [False, False]
    assert any(e.startswith("csp: ") for e in found["errs"]), found["errs"]
    assert any("undefinedFunction" in e for e in found["errs"]), found["errs"]
