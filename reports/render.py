"""A report on disk: one CSV per table, one PNG per plot, and `index.html` tying them together.

The folder and every file are private to the user (they name officers). index.html starts with the
report's one-paragraph summary, then shows every plot with its caption and links every table.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import os
from pathlib import Path

from reports.build import Report


def _csv_value(v):
    if isinstance(v, dt.date):  # dates, and datetimes (UTC, as ClickHouse gives them)
        return v.isoformat()
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else repr(round(v, 6))  # NaN (no interval): empty
    return v


def _open_private(path: Path, mode: str = "w", **kw):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, **kw)


def write_report(report: Report, out_dir: str | os.PathLike, progress=lambda text: None) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    for name, table in report.tables.items():
        path = out / f"{name}.csv"
        with _open_private(path, newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(table.columns)
            w.writerows([_csv_value(v) for v in row] for row in table.rows)
        written.append(path)
    for plot in report.plots:
        path = out / plot.name
        with _open_private(path, "wb") as fh:
            plot.figure.savefig(fh, format="png", metadata={"Title": plot.title, "Software": "hotspot report"})
        written.append(path)
        progress(f"wrote {path}")
    index = out / "index.html"
    with _open_private(index, encoding="utf-8") as fh:
        fh.write(render_html(report))
    written.append(index)
    return written


def render_html(report: Report) -> str:
    e = html.escape
    title = f"Hotspot Patrol {report.kind} report, {report.date_from} to {report.date_to}"
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45;padding:0 1rem}"
        "img{max-width:100%;border:1px solid #ccc}figure{margin:2rem 0}.note{color:#444}</style>",
        "</head><body>", f"<h1>{e(title)}</h1>", f'<p class="summary">{e(report.summary)}</p>',
    ]
    for note in report.notes:
        parts.append(f'<p class="note">{e(note)}</p>')
    for plot in report.plots:
        parts.append(f'<figure><img src="{e(plot.name)}" alt="{e(plot.title)}">'
                     f"<figcaption>{e(plot.caption)}</figcaption></figure>")
    parts.append("<h2>Tables (CSV)</h2><ul>")
    for name, table in report.tables.items():
        parts.append(f'<li><a href="{e(name)}.csv">{e(name)}.csv</a> ({len(table.rows)} rows)</li>')
    parts.append("</ul>")
    parts.append(f"<p class=\"note\">Trial days run 06:00 to 05:59 Europe/London. Definitions and the queries "
                 f"behind every figure: docs/analysts.md. Made {e(dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
