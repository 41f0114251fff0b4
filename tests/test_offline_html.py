"""Pages that work without internet: Data Docs rewritten to shipped assets, and the DVC plots template.
(The Data Docs of a real validate run are checked in test_validate.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from avssl_core.offline_html import ASSETS_DIR, CDN_FILES, DROPPED_LINKS, make_offline, remote_urls

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")

# A page as GX's templates write one (its head, cut down), two folders deep like a validation page.
GX_PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"/>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
</head><body>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20260101T000000Z&dataContextId=x"/>
<a href="https://greatexpectations.io">a link is not a download</a>
</body></html>"""


def test_every_cdn_url_has_its_shipped_file_and_licenses_ship_too():
    for rel in CDN_FILES.values():
        assert (ASSETS_DIR / rel).is_file(), rel
    for package in ("bootstrap", "jquery", "bootstrap-table", "fontawesome", "bootstrap-datepicker", "vega"):
        assert list((ASSETS_DIR / package).glob("LICENSE*")), package
    total = sum(p.stat().st_size for p in ASSETS_DIR.rglob("*") if p.is_file())
    assert total < 2_000_000, total


def test_a_gx_page_is_rewritten_to_local_files_once(tmp_path):
    site = tmp_path / "datadocs"
    page = site / "validations" / "run" / "page.html"
    page.parent.mkdir(parents=True)
    page.write_text(GX_PAGE)
    (site / "static" / "images").mkdir(parents=True)
    (site / "static" / "images" / "logo-long.png").write_bytes(b"png")
    assert len(remote_urls(GX_PAGE)) == 5  # the <a> link is not counted

    assert make_offline(site) == []
    html = page.read_text()
    assert remote_urls(html) == [] and DROPPED_LINKS[0] not in html
    local = re.findall(r'(?:src|href)="(\.\./[^"]+)"', html)
    assert "../../offline-assets/jquery/jquery.min.js" in local and "../../static/images/logo-long.png" in local
    assert all((page.parent / path).is_file() for path in local), local
    assert 'href="https://greatexpectations.io"' in html
    assert make_offline(site) == [] and page.read_text() == html  # idempotent


def test_a_url_with_no_shipped_copy_is_reported(tmp_path):
    (tmp_path / "index.html").write_text('<script src="https://cdn.example.org/new.js"></script>')
    assert make_offline(tmp_path) == [f"{tmp_path / 'index.html'}: https://cdn.example.org/new.js"]


@pytest.mark.timeout(120)
def test_dvc_plots_show_with_the_template_loads_vega_from_the_project(tmp_path):
    subprocess.run([str(DVC), "init", "-q", "--no-scm"], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "loss.csv").write_text("step,loss\n1,2.0\n2,1.5\n3,1.2\n")
    subprocess.run([str(DVC), "plots", "show", "loss.csv", "--html-template", str(REPO / "dashboards" / "dvc_plots.html")],
                   cwd=tmp_path, check=True, capture_output=True, timeout=100)
    html = (tmp_path / "dvc_plots" / "index.html").read_text()
    assert remote_urls(html) == [] and "vegaEmbed" in html and '"loss"' in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert len(scripts) == 3
    # The page is meant to be written to dvc_plots/ in the project root (DVC's default output folder).
    assert all((REPO / "dvc_plots" / src).resolve().is_file() for src in scripts), scripts
