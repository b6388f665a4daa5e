"""The report's two renderings of the same sections: a self-contained HTML page and Markdown.

Figures are embedded in the HTML as base64 data URIs (and lie beside it as PNG files); all text
from the run (spec, axis values, errors) is escaped. An inline script writes every image's
``naturalWidth`` into ``<pre id="imgcheck">`` on load, so a headless browser can check them.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import yaml

from analysis.links import mlflow_html, mlflow_markdown
from analysis.stats import VERDICT

if TYPE_CHECKING:
    from analysis.report import Section

RANKING_COLUMNS = [
    "rank",
    "setting",
    "seeds",
    "ber_ratio_map",
    "ci_low",
    "ci_high",
    "interval",
    VERDICT,
]
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
pre.spec { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
.best { background: #eef6ee; padding: 0.5em; border-left: 4px solid #3a3; }
.missing { background: #fdf3e6; padding: 0.5em; border-left: 4px solid #d80; }
"""
IMGCHECK = """<pre id="imgcheck" hidden></pre>
<script>
window.addEventListener("load", function () {
  var lines = Array.from(document.images).map(function (img) {
    return (img.dataset.file || "?") + " " + img.naturalWidth;
  });
  document.getElementById("imgcheck").textContent =
    "images " + lines.length + "\\n" + lines.join("\\n");
});
</script>"""


def esc(text) -> str:
    return html.escape(str(text))


def header_rows(s: Section) -> list[tuple[str, str]]:
    info = s.run.info
    counts = ", ".join(f"{n} {status}" for status, n in sorted(s.counts.items()))
    return [
        ("folder", str(s.run.path)),
        ("description", description(s.run.spec_text)),
        ("spec hash", info.get("spec_hash", "")),
        ("trials", f"{len(s.run.trials)} recorded of {info.get('trials', '?')} planned: {counts}"),
        ("axes", ", ".join(s.run.axes)),
        ("wall time", s.wall),
        ("reproduce", info.get("command") or "(unknown)"),
    ]


def description(spec_text: str) -> str:
    try:
        spec = yaml.safe_load(spec_text)
    except yaml.YAMLError:
        return ""
    return str(spec.get("description", "")) if isinstance(spec, dict) else ""


def ranking_table(s: Section, fmt) -> pd.DataFrame:
    table = s.ranking[[c for c in RANKING_COLUMNS if c in s.ranking]].copy()
    for col in ("ber_ratio_map", "ci_low", "ci_high"):
        table[col] = table[col].map(fmt)
    return table


def figure_html(title: str, path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    name = esc(Path(path).name)
    return (
        f'<figure><img src="data:image/png;base64,{data}" data-file="{name}" alt="{esc(title)}">'
        f'<figcaption>{esc(title)} (<a href="{name}">{name}</a>)</figcaption></figure>'
    )


def section_html(s: Section, index: int) -> str:
    ident = "ranking" if index == 0 else f"ranking-{index + 1}"
    parts = [f"<h1>{esc(s.run.name)}</h1>", "<table>"]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in header_rows(s)]
    parts += [
        "</table>",
        f'<details><summary>spec</summary><pre class="spec">{esc(s.run.spec_text)}</pre></details>',
    ]
    if s.missing:
        parts += ['<div class="missing"><b>Missing</b><ul>']
        parts += [f"<li>{esc(line)}</li>" for line in s.missing] + ["</ul></div>"]
    parts += ["<h2>Ranking</h2>", f'<p class="best">{esc(s.best)}</p>']
    table = ranking_table(s, lambda v: f"{v:.4f}")
    parts.append(table.to_html(index=False, escape=True, table_id=ident, border=0))
    parts += ["<h2>Figures</h2>", *(figure_html(t, p) for t, p in s.figures)]
    parts.append("<h2>Diverged and failed trials</h2>")
    if s.problems.empty:
        parts.append("<p>None.</p>")
    else:
        parts.append(s.problems.to_html(index=False, escape=True, border=0))
    parts += mlflow_html(s.run.path)  # links each trial to its MLflow run when one was recorded
    return "\n".join(parts)


def html_page(sections: list[Section], compared: Path | None) -> str:
    title = " vs ".join(s.run.name for s in sections)
    body = [section_html(s, i) for i, s in enumerate(sections)]
    if compared is not None:
        body += ["<h1>Runs compared</h1>", figure_html("Change in BER ratio to MAP", compared)]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>symgrid: {esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + f"\n{IMGCHECK}\n</body></html>\n"
    )


def md_table(df: pd.DataFrame) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def section_markdown(s: Section) -> str:
    parts = [f"# {s.run.name}", ""] + [
        f"- {k}: `{v}`" if k == "reproduce" else f"- {k}: {v}" for k, v in header_rows(s)
    ]
    if s.missing:
        parts += ["", "## Missing", *(f"- {line}" for line in s.missing)]
    parts += ["", "## Ranking", "", s.best, "", md_table(ranking_table(s, lambda v: f"{v:.4f}"))]
    parts += ["", "## Figures", *(f"- {t}: {p.name}" for t, p in s.figures)]
    parts += ["", "## Diverged and failed trials", ""]
    parts.append(md_table(s.problems) if not s.problems.empty else "None.")
    parts += mlflow_markdown(s.run.path)
    return "\n".join(parts)


def markdown(sections: list[Section], compared: Path | None) -> str:
    text = "\n\n".join(section_markdown(s) for s in sections)
    if compared is not None:
        text += f"\n\n# Runs compared\n\n- change in BER ratio to MAP: {compared.name}"
    return text + "\n"
