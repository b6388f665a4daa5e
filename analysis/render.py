"""The report's two renderings of the same sections: a self-contained HTML page and Markdown.

Both open with the findings (one sentence per axis, the effects table and figures), then the
confirmation against the parent run when there is one, interactions, the gap to MAP per Eb/N0,
overfitting and bias-variance when the grid has them, run details, and the full ranking last (in
HTML collapsed and sortable by any column). Nothing is loaded from outside the page: figures are
embedded as base64 data URIs (and lie beside it as PNG files), the sorting script is inline. All
text from the run (spec, axis values, errors) is escaped.

Two inline checks serve a headless browser: on load every image's ``naturalWidth`` goes into
``<pre id="imgcheck">``; opened as ``index.html#check``, the page also sorts the ranking by its
ratio column twice (descending) through the header's click handler and writes the first column
values it then shows into ``<pre id="sortcheck">``.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd
from symgrid.analysis import sections as sec
from symgrid.analysis.links import mlflow_html, mlflow_markdown
from symgrid.analysis.sections import Compared, Section

__all__ = ["html_page", "markdown"]

PARTS = [  # (figure part, heading), in page order after the findings and interactions
    ("gap", "Gap to the optimal detector per Eb/N0"),
    ("ber", "BER against Eb/N0 with the theory curves"),
    ("overfitting", "Overfitting"),
    ("biasvar", "Bias-variance"),
    ("training", "Training"),
]
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
table.sortable th { cursor: pointer; background: #f0f0f0; }
pre.spec { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
.best { background: #eef6ee; padding: 0.5em; border-left: 4px solid #3a3; }
.missing { background: #fdf3e6; padding: 0.5em; border-left: 4px solid #d80; }
ul.findings li { margin: 0.4em 0; }
"""
SCRIPT = """<pre id="imgcheck" hidden></pre><pre id="sortcheck" hidden></pre>
<script>
function sortBy(th) {
  var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
  var down = th.dataset.order === "asc";
  var key = function (row) {
    var text = row.cells[col].textContent.trim(), n = parseFloat(text);
    return isNaN(n) ? text : n;
  };
  var rows = Array.from(body.rows).sort(function (a, b) {
    var x = key(a), y = key(b), c = x < y ? -1 : x > y ? 1 : 0;
    return down ? -c : c;
  });
  rows.forEach(function (row) { body.appendChild(row); });
  Array.from(th.parentNode.cells).forEach(function (h) { delete h.dataset.order; });
  th.dataset.order = down ? "desc" : "asc";
}
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.title = "click to sort";
  th.addEventListener("click", function () { sortBy(th); });
});
window.addEventListener("load", function () {
  var lines = Array.from(document.images).map(function (img) {
    return (img.dataset.file || "?") + " " + img.naturalWidth;
  });
  document.getElementById("imgcheck").textContent =
    "images " + lines.length + "\\n" + lines.join("\\n");
  var table = document.getElementById("ranking");
  if (location.hash !== "#check" || !table) return;
  var th = Array.from(table.tHead.rows[0].cells).find(function (h) {
    return ["ber_ratio_map", "rate_gap"].indexOf(h.textContent.trim()) >= 0;
  });
  th.click(); th.click();
  var col = th.cellIndex;
  document.getElementById("sortcheck").textContent = th.dataset.order + "\\n" +
    Array.from(table.tBodies[0].rows).map(function (r) {
      return r.cells[col].textContent.trim();
    }).join("\\n");
});
</script>"""


def esc(text) -> str:
    return html.escape(str(text))


def figure_html(title: str, path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    name = esc(Path(path).name)
    return (
        f'<figure><img src="data:image/png;base64,{data}" data-file="{name}" alt="{esc(title)}">'
        f'<figcaption>{esc(title)} (<a href="{name}">{name}</a>)</figcaption></figure>'
    )


def table_html(df: pd.DataFrame, **kw) -> str:
    return df.to_html(index=False, escape=True, border=0, **kw)


def figures_html(figures: list[tuple[str, Path]]) -> list[str]:
    return [figure_html(title, path) for title, path in figures]


def findings_html(s: Section, suffix: str) -> list[str]:
    parts = ["<h2>Findings</h2>", f'<p class="best">{esc(s.best)}</p>']
    if s.findings:
        parts += ['<ul class="findings">']
        parts += [f"<li>{esc(sentence)}</li>" for _, sentence in s.findings]
        parts += ["</ul>", table_html(sec.format_effects(s), table_id=f"effects{suffix}")]
    else:
        parts.append("<p>No axis with two or more levels completed: no effects to estimate.</p>")
    return parts + figures_html(s.figures["effects"])


def confirmation_html(s: Section) -> list[str]:
    if s.confirmed is None:
        return []
    parts = ["<h2>Confirmation on fresh seeds</h2>", f'<p class="best">{esc(s.confirmed)}</p>']
    if s.stats.confirmation is not None and not s.stats.confirmation.empty:
        parts.append(table_html(sec.format_confirmation(s), table_id="confirmation"))
    return parts


def details_html(s: Section) -> list[str]:
    parts = ["<h2>Run details</h2>", "<table>"]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in sec.header_rows(s)]
    parts += [
        "</table>",
        f'<details><summary>spec</summary><pre class="spec">{esc(s.run.spec_text)}</pre></details>',
        "<h2>Diverged and failed trials</h2>",
        "<p>None.</p>" if s.problems.empty else table_html(s.problems),
    ]
    return parts


def section_html(s: Section, index: int) -> str:
    suffix = "" if index == 0 else f"-{index + 1}"
    count = ", ".join(f"{n} {status}" for status, n in sorted(s.counts.items()))
    parts = [f"<h1>{esc(s.run.name)}</h1>", f"<p>{len(s.run.trials)} trials: {esc(count)}.</p>"]
    if s.missing:
        parts += ['<div class="missing"><b>Missing</b><ul>']
        parts += [f"<li>{esc(line)}</li>" for line in s.missing] + ["</ul></div>"]
    parts += confirmation_html(s) + findings_html(s, suffix)  # a confirmation run: its verdict
    parts += ["<h2>Interactions</h2>", f"<p>{esc(s.interactions)}</p>"]
    if not s.stats.interactions.empty:
        parts.append(table_html(sec.format_interactions(s)))
    parts += figures_html(s.figures["interactions"])
    for part, heading in PARTS:
        if s.figures[part]:
            parts += [f"<h2>{esc(heading)}</h2>", *figures_html(s.figures[part])]
    parts += details_html(s)
    table = table_html(sec.format_ranking(s), table_id=f"ranking{suffix}", classes="sortable")
    parts += [
        "<h2>Full ranking</h2>",
        f"<details><summary>all {len(s.stats.ranking)} settings, best first (click a column "
        f"heading to sort)</summary>{table}</details>",
    ]
    parts += mlflow_html(s.run.path)  # links each trial to its MLflow run when one was recorded
    return "\n".join(parts)


def compared_html(compared: Compared) -> list[str]:
    parts = ["<h1>Runs compared</h1>", "<h2>Settings measured in more than one run</h2>"]
    parts.append(
        table_html(compared.settings, table_id="compare-settings", classes="sortable")
        if not compared.settings.empty
        else "<p>No setting was measured in more than one run.</p>"
    )
    parts.append("<h2>Axis levels in more than one run</h2>")
    parts.append(
        table_html(compared.levels, table_id="compare-levels", classes="sortable")
        if not compared.levels.empty
        else "<p>No axis level was measured in more than one run.</p>"
    )
    if compared.figure is not None:
        parts.append(figure_html("Change in BER ratio to MAP", compared.figure))
    return parts


def html_page(sections: list[Section], compared: Compared | None) -> str:
    title = " vs ".join(s.run.name for s in sections)
    body = [section_html(s, i) for i, s in enumerate(sections)]
    if compared is not None:
        body += compared_html(compared)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>symgrid: {esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + f"\n{SCRIPT}\n</body></html>\n"
    )


def md_table(df: pd.DataFrame) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def md_figures(figures: list[tuple[str, Path]]) -> list[str]:
    return [f"- {title}: {path.name}" for title, path in figures]


def section_markdown(s: Section) -> str:
    parts = [f"# {s.run.name}", ""]
    if s.missing:
        parts += ["## Missing", *(f"- {line}" for line in s.missing), ""]
    if s.confirmed is not None:
        parts += ["## Confirmation on fresh seeds", "", s.confirmed, ""]
        if s.stats.confirmation is not None and not s.stats.confirmation.empty:
            parts += [md_table(sec.format_confirmation(s)), ""]
    parts += ["## Findings", "", s.best, "", *(f"- {sentence}" for _, sentence in s.findings)]
    if s.findings:
        parts += ["", md_table(sec.format_effects(s))]
    parts += ["", *md_figures(s.figures["effects"])]
    parts += ["", "## Interactions", "", s.interactions]
    if not s.stats.interactions.empty:
        parts += ["", md_table(sec.format_interactions(s))]
    parts += ["", *md_figures(s.figures["interactions"])]
    for part, heading in PARTS:
        if s.figures[part]:
            parts += ["", f"## {heading}", *md_figures(s.figures[part])]
    parts += ["", "## Run details", ""]
    parts += [f"- {k}: `{v}`" if k == "reproduce" else f"- {k}: {v}" for k, v in sec.header_rows(s)]
    parts += ["", "## Diverged and failed trials", ""]
    parts.append(md_table(s.problems) if not s.problems.empty else "None.")
    parts += ["", "## Full ranking", "", md_table(sec.format_ranking(s))]
    parts += mlflow_markdown(s.run.path)
    return "\n".join(parts)


def markdown(sections: list[Section], compared: Compared | None) -> str:
    text = "\n\n".join(section_markdown(s) for s in sections)
    if compared is not None:
        text += "\n\n# Runs compared\n\n## Settings measured in more than one run\n\n"
        text += md_table(compared.settings) if not compared.settings.empty else "None."
        text += "\n\n## Axis levels in more than one run\n\n"
        text += md_table(compared.levels) if not compared.levels.empty else "None."
        if compared.figure is not None:
            text += f"\n\n- change in BER ratio to MAP: {compared.figure.name}"
    return text + "\n"
