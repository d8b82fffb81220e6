"""The one HTML page for people: every registry chart with its timestamp, and JSON/CSV links per served
table. Self-contained (no external assets), with a Content-Security-Policy that allows only itself."""

from __future__ import annotations

import hashlib
import html
from base64 import b64encode
from datetime import datetime, timezone

from core import registry
from service.chart_files import ChartFile
from service.reader import MAX_LIMIT, TableStats

_PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; }
header, section { padding: 16px 28px; }
header { background: #fff; border-bottom: 1px solid #dde1e6; }
h1 { margin: 0 0 4px; font-size: 24px; } h2 { font-size: 19px; margin: 8px 0 12px; } h3 { font-size: 15px; margin: 0; }
nav a, td a { margin-right: 12px; } a { color: #1a5fb4; }
.muted { color: #5f6368; font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; align-items: start; }
figure { margin: 0; background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 12px; }
figcaption { display: flex; flex-wrap: wrap; gap: 2px 12px; justify-content: space-between; align-items: baseline;
             margin-bottom: 8px; }
figure img { width: 100%; height: auto; display: block; }
.missing p { color: #8a4b08; }
table { border-collapse: collapse; background: #fff; width: 100%; font-size: 14px; }
th, td { border: 1px solid #dde1e6; padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f4; } td.nowrap { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff4e5; border: 1px solid #f0c36d; padding: 8px 12px; border-radius: 4px; }
""".strip()

# Marks every chart image with data-loaded / data-natural-width once it has loaded (or failed), so a
# headless browser's DOM dump shows whether the charts really rendered.
_PAGE_SCRIPT = """
document.querySelectorAll("img[data-chart]").forEach(function (img) {
  function mark() { img.setAttribute("data-loaded", img.naturalWidth > 0 ? "true" : "false");
                    img.setAttribute("data-natural-width", String(img.naturalWidth)); }
  if (img.complete) { mark(); } else { img.addEventListener("load", mark); img.addEventListener("error", mark); }
});
""".strip()


def _csp_hash(source: str) -> str:
    return "'sha256-" + b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


PAGE_CSP = (
    f"default-src 'none'; img-src 'self'; style-src {_csp_hash(_PAGE_STYLE)}; script-src {_csp_hash(_PAGE_SCRIPT)}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _utc_text(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _figure(chart: ChartFile) -> str:
    if not chart.exists:
        return (
            f'<figure id="chart-{_e(chart.name)}" class="missing"><figcaption><h3>{_e(chart.title)}</h3>'
            "</figcaption><p>Not rendered yet: run <code>make run</code> or <code>spendwise refresh</code>.</p>"
            "</figure>"
        )
    url = f"/charts/{chart.name}.png"
    return (
        f'<figure id="chart-{_e(chart.name)}"><figcaption><h3>{_e(chart.title)}</h3>'
        f'<span class="muted">updated {_e(_utc_text(chart.last_modified))} · '
        f"{_e(f'{(chart.size_bytes or 0) / 1024:.0f}')} KB</span></figcaption>"
        f'<a href="{_e(url)}"><img data-chart="{_e(chart.name)}" src="{_e(url)}?v={_e(chart.version)}" '
        f'width="1200" height="700" alt="{_e(chart.title)}"></a></figure>'
    )


def _table_row(table: registry.Table, tables: dict[str, TableStats] | None) -> str:
    stats = (tables or {}).get(table.name)
    if tables is None:
        rows, updated = "?", "?"
    elif stats is None:
        rows, updated = "not published yet", ""
    else:
        rows, updated = f"{stats.rows:,}", _utc_text(stats.generated_at)
    json_url, csv_url = f"/data/{table.name}", f"/data/{table.name}?format=csv&limit={MAX_LIMIT}"
    xlsx_url = f"/data/{table.name}?format=xlsx"
    return (
        f"<tr><td><code>{_e(table.name)}</code></td><td>{_e(table.grain)}</td><td class=\"num\">{_e(rows)}</td>"
        f"<td class=\"nowrap\">{_e(updated)}</td>"
        f"<td class=\"nowrap\"><a href=\"{_e(json_url)}\">JSON</a><a href=\"{_e(csv_url)}\">CSV</a>"
        f"<a href=\"{_e(xlsx_url)}\">XLSX</a></td></tr>"
    )


def render_page(charts: list[ChartFile], tables: dict[str, TableStats] | None, warehouse_note: str | None,
                warehouse: str) -> str:
    """The page; `tables` is None when the warehouse could not be read (then `warehouse_note` says why)."""
    rendered = sum(c.exists for c in charts)
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Spendwise: charts and data</title>",
        f"<style>{_PAGE_STYLE}</style></head><body>",
        "<header><h1>Spendwise</h1>",
        f'<p class="muted">{rendered} of {len(charts)} charts rendered · warehouse {_e(warehouse)} · '
        f"page generated {_e(_utc_text(datetime.now(timezone.utc)))}</p>",
        '<nav><a href="/status">pipeline status (JSON)</a><a href="/data">table index (JSON)</a>'
        '<a href="/charts">chart index (JSON)</a><a href="/openapi.json">OpenAPI</a></nav></header>',
        '<section id="charts"><h2>Charts</h2><div class="grid">',
        *(_figure(chart) for chart in charts),
        "</div></section>",
        '<section id="data"><h2>Data</h2>',
        *([f'<p class="note">{_e(warehouse_note)}</p>'] if warehouse_note else []),
        "<table><thead><tr><th>Table</th><th>What a row is</th><th>Rows</th><th>Updated</th>"
        "<th>Download</th></tr></thead><tbody>",
        *(_table_row(table, tables) for table in registry.served_tables().values()),
        "</tbody></table>",
        '<p class="muted">JSON and CSV take <code>channel</code>, <code>model</code>, <code>date_from</code>, '
        f"<code>date_to</code>, <code>limit</code> (1 to {MAX_LIMIT:,}) and <code>offset</code>; "
        "see the OpenAPI document for details.</p></section>",
        f"<script>{_PAGE_SCRIPT}</script></body></html>",
    ])
