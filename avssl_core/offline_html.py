"""HTML pages that work without internet: CDN stylesheets and scripts replaced by copies shipped with avssl.

Great Expectations' Data Docs (and DVC's plots page) load bootstrap, jQuery, bootstrap-table, Font Awesome
and vega from CDNs; on a machine without internet (many GPU clusters) the pages come out unstyled, with an
empty results table (bootstrap-table fills it from JavaScript) and blank charts. ``make_offline`` copies
the vendored files (``avssl_core/web_assets``, see its README.md for versions and licenses) beside the
pages and points every such URL at them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS_DIR = Path(__file__).with_name("web_assets")
# Where a site's copy of the assets goes, inside the site's folder.
SITE_ASSETS = "offline-assets"

# CDN URL -> vendored file (relative to ASSETS_DIR). Two filter-control stylesheets are named by GX's
# templates (1.19.0, .css and .min.css); both are served by the 1.19.1 file shipped with the script.
CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    # GX names the major versions, DVC exact ones; both get the versions DVC pins.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega/vega-embed.min.js",
    "https://cdn.jsdelivr.net/npm/vega@5.20.2": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5.2.0": "vega/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6.18.2": "vega/vega-embed.min.js",
}
# A dark-mode copy of bootstrap's 150 kB stylesheet: not shipped, so its <link> is removed (light pages).
DROPPED_LINKS = ("https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",)
# GX's logo is fetched from S3 with the page's build time and data-context id; the site has a copy.
_GX_LOGO = re.compile(r'https://great-expectations-web-assets\.[^"\']*/logo-long\.png[^"\']*')
_GX_LOCAL_LOGO = "static/images/logo-long.png"
# What still loads from the network after rewriting: a src, or the href of a <link>.
_REMOTE = re.compile(r'<(?:script|img)\b[^>]*\bsrc="(https?://[^"]+)"|<link\b[^>]*\bhref="(https?://[^"]+)"')


def make_offline(site_dir: Path) -> list[str]:
    """Rewrite every HTML page under ``site_dir`` to load its assets from ``site_dir/offline-assets``.

    Idempotent (a rewritten page has nothing left to rewrite). Returns the URLs that still load from the
    network, as ``page: url`` (none for the pages GX and DVC write today; a new template may add some).
    """
    site_dir = Path(site_dir)
    shutil.copytree(ASSETS_DIR, site_dir / SITE_ASSETS, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("README.md"))
    remaining = []
    for page in sorted(site_dir.rglob("*.html")):
        if SITE_ASSETS in page.relative_to(site_dir).parts:
            continue
        text = page.read_text(encoding="utf-8")
        new = localize(text, page_dir=page.parent, assets_dir=site_dir / SITE_ASSETS,
                       gx_logo=site_dir / _GX_LOCAL_LOGO)
        if new != text:
            page.write_text(new, encoding="utf-8")
        remaining += [f"{page}: {url}" for url in remote_urls(new)]
    return remaining


def localize(html: str, *, page_dir: Path, assets_dir: Path, gx_logo: Path | None = None) -> str:
    """``html`` with its CDN URLs pointing at ``assets_dir`` (paths relative to ``page_dir``)."""
    for url, rel in CDN_FILES.items():
        local = Path(os.path.relpath(assets_dir / rel, page_dir)).as_posix()
        html = html.replace(f'"{url}"', f'"{local}"')
    for url in DROPPED_LINKS:
        html = re.sub(rf'<link\b[^>]*href="{re.escape(url)}"[^>]*>\s*', "", html)
    if gx_logo is not None and gx_logo.exists():
        html = _GX_LOGO.sub(Path(os.path.relpath(gx_logo, page_dir)).as_posix(), html)
    return html


def remote_urls(html: str) -> list[str]:
    """URLs the page would fetch from the network when opened (scripts, stylesheets, images)."""
    return [a or b for a, b in _REMOTE.findall(html)]
