"""The page shell: a page's sections, its HTML (styles, the Vega bundle and every chart inlined,
so it opens offline), and the table and label formatting every page shares.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from stockpile.fmt import money as _money
from stockpile.jsontypes import JSON

Item = str | alt.TopLevelMixin  # a section's content: HTML, or a chart


@dataclass
class Page:
    """A report page: title, header HTML, and named sections of charts and tables."""

    title: str
    kind: str
    header: str = ""
    sections: list[tuple[str, str, list[Item]]] = field(default_factory=list)  # (title, note, [chart | html])
    charts: dict[str, alt.TopLevelMixin] = field(default_factory=dict)

    def add(self, title: str, note: str, *items: Item) -> None:
        for item in items:
            if not isinstance(item, str):
                self.charts[f"{self.kind}_{len(self.charts) + 1:02d}_{slug(title)}"] = item
        self.sections.append((title, note, list(items)))


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")[:40]


def kv_table(rows: list[tuple[str, str]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


def df_table(
    df: pd.DataFrame, sortable: bool = False, money_cols: tuple[str, ...] = (), pct_cols: tuple[str, ...] = ()
) -> str:
    """An HTML table: dollars as $m/$bn, shares as %, text left-aligned, figures right."""
    # long keys may break after a dot or an underscore, never inside a word
    head = "".join(f"<th>{html.escape(str(c)).replace('.', '.<wbr>').replace('_', '_<wbr>')}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            cls = ""
            if c in money_cols:
                text, key = _money(v), v
            elif c in pct_cols and isinstance(v, float):
                text, key = ("–" if v != v else f"{v:.1%}"), v
            elif isinstance(v, float):
                text, key = ("–" if v != v else f"{v:,.4g}"), v
            elif isinstance(v, (int, bool)) or hasattr(v, "dtype"):
                text, key = html.escape(str(v)), str(v)
            else:
                text, key, cls = html.escape(str(v)), str(v), ' class="text"'
            cells.append(f'<td{cls} data-key="{html.escape(str(key))}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = "data sortable" if sortable else "data"
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def read_table(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, keep_default_na=False, na_values=[""])


def field_name(column: str) -> str:
    """Vega-Lite reads dots in a field name as nested access: chart columns use '/' instead."""
    return column.replace(".", "/")


def short_labels(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix (two segments at least) that tells each key apart from the others:
    two 'shocks.0.periods' keys keep their scenario names."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(min(2, len(parts)), len(parts) + 1):
            tail = ".".join(parts[-n:])
            if sum(1 for other in keys if other == tail or other.endswith("." + tail)) == 1:
                break
        out[k] = tail
    return out


def fmt_value(key: str, v: Any) -> str:
    """A swept value for people: dollars as $600m, other numbers as they read; a yearly list (as
    study.csv writes it) value by value."""
    if isinstance(v, str) and v.startswith("["):
        try:
            v = json.loads(v)
        except ValueError:
            return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(key, float(x) if isinstance(x, (int, float)) else x) for x in v) + "]"
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return str(v)
    if isinstance(v, float) and v != v:
        return "–"
    if key.endswith("_usd") and isinstance(v, (int, float)):
        return _money(float(v))
    if isinstance(v, float) and v.is_integer():
        return f"{int(v):,}"
    return str(v)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:24px;color:#1b1f24}
h1{font-size:1.5rem;margin:0 0 12px} h2{font-size:1.15rem;margin:28px 0 4px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
p.note{color:#57606a;margin:4px 0 10px;font-size:.9rem}
table{border-collapse:collapse;font-size:.85rem;margin:6px 0}
table.kv th{text-align:left;padding:2px 16px 2px 0;color:#57606a;font-weight:500} table.kv td{padding:2px 0}
table.data th,table.data td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
table.data th{background:#f6f8fa;max-width:14em} table.sortable th{cursor:pointer} table.data td.text{text-align:left}
.chart{margin:8px 0 16px;overflow-x:auto}
footer{margin-top:32px;color:#57606a;font-size:.8rem}
@media print{.chart{break-inside:avoid} body{max-width:none}}
"""


SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  const key = r => { const v = r.cells[i].dataset.key; const n = parseFloat(v); return isNaN(n) ? v : n; };
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * dir).forEach(r => body.appendChild(r));
}));
"""


def render(page: Page) -> str:
    """The page as one HTML document: styles, the Vega bundle and every chart spec inlined."""
    import vl_convert as vlc

    alt.data_transformers.disable_max_rows()
    parts: list[str] = []
    specs: list[tuple[str, JSON]] = []
    for title, note, items in page.sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        for item in items:
            if isinstance(item, str):
                parts.append(item)
            else:
                div = f"chart{len(specs) + 1}"
                specs.append((div, item.to_dict()))
                parts.append(f'<div class="chart" id="{div}"></div>')
    embeds = ",\n".join(f"vegaEmbed('#{d}', {json.dumps(s)}, {{renderer: 'svg', actions: false}})" for d, s in specs)
    bundle = vlc.javascript_bundle(vl_version=alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0])  # type: ignore[call-arg]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page.title)}</title><style>{CSS}</style>
<script type="text/javascript">{bundle}</script></head>
<body data-charts="{len(specs)}">
<h1>{html.escape(page.title)}</h1>
{page.header}
{"".join(parts)}
<footer>Written by stockpile from the files in this folder; opens offline.</footer>
<script type="text/javascript">
{SORT_JS}
Promise.all([{embeds}]).then(() => {{ document.body.dataset.rendered = String({len(specs)}); }})
  .catch(err => {{ document.body.dataset.error = String(err); console.error(err); }});
</script>
</body></html>
"""
