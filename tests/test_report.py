"""The report from a real small run folder: files, contents, partial runs, errors, a browser."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from symgrid.analysis.collect import load_run, stale
from symgrid.analysis.report import ReportError, write_report
from symgrid.trainables.storage_io import write_json

pytestmark = pytest.mark.slow  # trains a run folder of real trials

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(run_folder, tmp_path_factory):
    return write_report([run_folder], tmp_path_factory.mktemp("report"))


def copy_run(run_folder, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_folder, target, ignore=shutil.ignore_patterns("report"))
    return target


def test_every_referenced_png_exists_and_is_valid(report):
    page = report.read_text()
    names = set(re.findall(r'data-file="([^"]+\.png)"', page))
    assert len(names) >= 6  # BER per axis, gap heatmap, overfitting, gap, bias-variance, lr
    for name in names:
        data = (report.parent / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert f'href="{name}"' in page
    assert page.count("data:image/png;base64,") == len(names)
    assert {"biasvar_params.png", "lr.png", "overfitting.png"} <= names


def test_html_has_ranking_and_header(report):
    page = report.read_text()
    assert 'id="ranking"' in page
    assert "symgrid run tiny.yaml" in page  # the command that reproduces the run
    assert "16 completed" in page and "Diverged and failed trials" in page
    assert "Missing" not in page  # a complete run


def test_findings_come_first_and_the_full_ranking_last(report, run_folder):
    page = report.read_text()
    order = ["<h2>Findings</h2>", "<h2>Interactions</h2>", "<h2>Run details</h2>"]
    order += ["<h2>Full ranking</h2>"]
    positions = [page.index(h) for h in order]
    assert positions == sorted(positions)
    last = page[positions[-1] :]
    assert "<details><summary>all 8 settings" in last and 'class="dataframe sortable"' in last
    effects = pd.read_parquet(run_folder / "effects.parquet")
    assert set(effects["axis"]) == {"scheduler", "regularization", "model.hidden"}
    for axis in effects["axis"].unique():  # a sentence and a figure per axis
        assert (
            f"<li>{axis}: " in page and f'data-file="effect_{axis.replace(".", "_")}.png"' in page
        )
    summary = (report.parent / "summary.md").read_text()
    heads = [summary.index(h) for h in ("## Findings", "## Interactions", "## Full ranking")]
    assert heads == sorted(heads)


def test_summary_states_the_verdict_that_the_seeds_support(report, run_folder):
    summary = (report.parent / "summary.md").read_text()
    best = re.search(r"Best setting: (.+?) \(BER ratio", summary)
    assert best is not None
    table = summary[summary.index("## Full ranking") :]
    first_row = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    second_row = next(line for line in table.splitlines() if line.startswith("| 2 |"))
    assert best.group(1) in first_row
    # Independently: a paired t-test of the two settings' log ratios over their seeds.
    trials = pd.read_parquet(run_folder / "trials.parquet")
    keys = ["scheduler", "regularization", "model.hidden"]
    label = (
        trials[keys]
        .astype(str)
        .apply(lambda r: ", ".join(f"{k}={v}" for k, v in zip(keys, r)), axis=1)
    )
    first, second = (row.split(" | ")[1] for row in (first_row, second_row))
    by_seed = lambda s: trials[label == s].set_index("seed")["ber_ratio_map"]  # noqa: E731
    a, b = by_seed(first).sort_index(), by_seed(second).sort_index()
    assert len(a) == len(b) == 2
    # Two seeds: a paired t-test with 1 df is no finding, and the summary must say so.
    assert "too few seeds to separate settings (2 seeds" in summary
    assert "significantly better than the runner-up" not in summary
    assert "selected as the lowest of 8 settings" in summary and "symgrid confirm" in summary
    assert "figure of merit: ber_ratio_map" in summary


def test_default_out_and_points_without_map_errors(run_folder, tmp_path):
    run = copy_run(run_folder, tmp_path)
    trials = pd.read_parquet(run / "trials.parquet")
    trials["points_no_map_errors"] = [1, 0] * (len(trials) // 2)  # one per setting (2 seeds)
    trials.to_parquet(run / "trials.parquet")
    assert write_report([run]) == run / "report" / "index.html"
    page = (run / "report" / "index.html").read_text()
    assert "<th>points_no_map_errors</th>" in page[page.index('id="ranking"') :]
    assert table_rows(page, "ranking")[0][4] == "1"  # rank, setting, network, seeds, points


def test_partial_run_says_what_is_missing(run_folder, tmp_path):
    run = copy_run(run_folder, tmp_path)
    shutil.rmtree(run / "trials" / "t0005")
    (run / "trials" / "t0006" / "trial.json").unlink()  # started, never finished
    info = json.loads((run / "run.json").read_text())
    del info["finished_at"]
    write_json(info, run / "run.json")
    summary = (write_report([run]).parent / "summary.md").read_text()
    assert "did not finish" in summary
    assert "2 of 16 planned trials have no records" in summary
    assert "started but without results: t0006" in summary
    assert "14 recorded of 16 planned" in summary


def test_failed_trial_is_listed(run_folder, tmp_path):
    run = copy_run(run_folder, tmp_path)
    record = json.loads((run / "trials" / "t0003" / "trial.json").read_text())
    failed = {"trial_id": "t0003", "status": "failed", "error": "RuntimeError: <boom> & bust"}
    write_json(
        {**failed, "axes": record["axes"], "config": record["config"]},
        run / "trials" / "t0003" / "trial.json",
    )
    (run / "trials.parquet").unlink()  # tables not rebuilt: the report reads the folders
    page = write_report([run]).read_text()
    assert "RuntimeError: &lt;boom&gt; &amp; bust" in page  # listed, and escaped
    assert "15 completed" in page and "1 failed" in page


def test_tables_are_stale_when_a_record_is_newer_or_the_trials_differ(run_folder, tmp_path):
    run = copy_run(run_folder, tmp_path)
    assert not stale(run)
    record = run / "trials" / "t0003" / "trial.json"
    record.write_text(record.read_text())  # rewritten after the tables were built
    assert stale(run)
    assert load_run(run).rebuilt and not stale(run)  # the loader rebuilt and wrote them
    shutil.rmtree(run / "trials" / "t0004")  # a trial the tables still list
    assert stale(run)


def test_truncated_parquet_is_a_report_error_naming_it(run_folder, tmp_path):
    run = copy_run(run_folder, tmp_path)
    data = (run / "ber.parquet").read_bytes()
    (run / "ber.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReportError, match=r"ber\.parquet: unreadable Parquet file"):
        write_report([run])
    assert not (run / "report").exists()  # nothing half-written


def test_empty_run_is_a_report_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no trials"):
        write_report([tmp_path / "empty"])


def table_rows(page: str, ident: str) -> list[list[str]]:
    """The body cells of the table with id ``ident``."""
    table = re.search(rf'<table[^>]*id="{ident}"[^>]*>(.*?)</table>', page, re.S)
    assert table is not None, ident
    body = table.group(1).split("<tbody>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]


def test_several_runs_are_compared(run_folder, tmp_path):
    other = copy_run(run_folder, tmp_path)
    index = write_report([run_folder, other], tmp_path / "both")
    assert (tmp_path / "both" / "compare.png").read_bytes().startswith(PNG_MAGIC)
    page = index.read_text()
    assert 'id="ranking"' in page and 'id="ranking-2"' in page
    # The same 8 settings and 7 axis levels in both runs, lined up side by side.
    settings = table_rows(page, "compare-settings")
    assert len(settings) == 8 and all(len(row) == 3 for row in settings)
    assert all(row[1] == row[2] for row in settings)  # a copy: identical estimates
    levels = table_rows(page, "compare-levels")
    assert len(levels) == 6  # scheduler, regularization, model.hidden: 2 levels each
    with pytest.raises(ReportError, match="--out"):
        write_report([run_folder, other])


def dump_dom(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is required: apt-get install -y chromium")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout


def test_index_html_in_headless_chromium(report, tmp_path):
    page = report.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from outside the folder
    dom = dump_dom(report.resolve().as_uri() + "#check", tmp_path / "profile")
    check = re.search(r'<pre id="imgcheck"[^>]*>(.*?)</pre>', dom, re.S)
    assert check is not None, "the page's image check did not run"
    head, *lines = check.group(1).strip().splitlines()
    assert head == f"images {len(lines)}" and len(lines) >= 10
    widths = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in lines}
    assert all(width > 0 for width in widths.values()), widths
    assert {
        "effect_scheduler.png",
        "ratio_scheduler.png",
        "gap_scheduler_regularization.png",
    } <= set(widths)
    for section in ("Findings", "Interactions", "Full ranking"):
        assert f"<h2>{section}</h2>" in dom
    # The ranking sorts in the browser: two clicks on its ratio heading, descending.
    sort = re.search(r'<pre id="sortcheck"[^>]*>(.*?)</pre>', dom, re.S)
    assert sort is not None and sort.group(1).strip(), "the sort check did not run"
    order, *values = sort.group(1).strip().splitlines()
    shown = [float(v) for v in values]
    assert order == "desc" and len(shown) == 8
    assert shown == sorted(shown, reverse=True) and shown != sorted(shown)


def test_statistics_are_computed_once_and_read_by_the_report(run_folder, tmp_path, monkeypatch):
    """build_all (what `symgrid run` calls) wrote the statistics; the report reads them, and
    computes them again only when the run's tables are newer."""
    from symgrid.analysis import derive

    run = copy_run(run_folder, tmp_path)
    calls = []
    real = derive.analyze
    monkeypatch.setattr(derive, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))
    write_report([run])
    assert calls == []  # read, not recomputed
    written = pd.read_parquet(run / "effects.parquet")
    summary = (run / "report" / "summary.md").read_text()
    top = written[written["best"]].iloc[0]
    assert f"{top['score']:.4f}" in summary  # the numbers on the page are the written ones
    trials = pd.read_parquet(run / "trials.parquet")
    trials.to_parquet(run / "trials.parquet")  # the run's tables are now newer
    write_report([run])
    assert calls == [1]
    assert (run / "statistics.json").stat().st_mtime_ns >= (
        run / "trials.parquet"
    ).stat().st_mtime_ns
    write_report([run])
    assert calls == [1]  # fresh again
    written = json.loads((run / "statistics.json").read_text())
    assert written["analysis_code"] == derive.analysis_code()
    (run / "statistics.json").write_text(json.dumps({**written, "analysis_code": "older"}))
    os.utime(run / "statistics.json")  # newer than the tables, but from other analysis code
    write_report([run])
    assert calls == [1, 1]  # computed again by this code


def with_rate_gap(run: Path) -> Path:
    """The trial-side columns of issue 16 added to a run's tables (synthetic values)."""
    trials = pd.read_parquet(run / "trials.parquet")
    gap = 0.01 * np.log(trials["ber_ratio_map"].astype(float))
    trials = trials.assign(rate_gap=gap, rate_gap_se=0.0005)
    trials.to_parquet(run / "trials.parquet")
    ber = pd.read_parquet(run / "ber.parquet")
    ber = ber.assign(rate_gap=0.001 * ber["ebno_db"] + 0.01, rate_gap_se=0.0001)
    ber.to_parquet(run / "ber.parquet")
    return run


def test_report_by_the_rate_gap_names_its_figure_of_merit(run_folder, tmp_path):
    run = with_rate_gap(copy_run(run_folder, tmp_path))
    summary = (write_report([run], metric="rate_gap").parent / "summary.md").read_text()
    assert "figure of merit: rate_gap" in summary and "bits/symbol" in summary
    assert json.loads((run / "statistics.json").read_text())["metric"] == "rate_gap"
    table = pd.read_parquet(run / "effects.parquet")
    assert (table["metric"] == "rate_gap").all()
    by_point = pd.read_parquet(run / "effects_by_point.parquet")
    assert set(by_point["ebno_db"]) == {0.0, 6.0} and (by_point["metric"] == "rate_gap").all()
    assert "| rate_gap |" in summary.replace("rate_gap | ci_low", "rate_gap |")  # ranking column
    write_report([run])  # the spec's default again: recomputed, not the stale rate_gap tables
    assert json.loads((run / "statistics.json").read_text())["metric"] == "ber_ratio_map"


def test_rate_gap_on_a_run_without_it_is_one_line_and_exit_2(run_folder, tmp_path):
    from symgrid.grid.cli import main

    run = copy_run(run_folder, tmp_path)
    for name in ("trials", "ber"):  # a run recorded before the rate gap existed
        table = pd.read_parquet(run / f"{name}.parquet")
        table.drop(columns=["rate_gap", "rate_gap_se"]).to_parquet(run / f"{name}.parquet")
    with pytest.raises(ReportError, match="metric 'rate_gap': the trials recorded no rate_gap"):
        write_report([run], metric="rate_gap")
    assert main(["report", str(run), "--metric", "rate_gap"]) == 2
    assert not (run / "report").exists()


def test_the_metric_spec_key_is_validated_and_leaves_the_hash_alone():
    from symgrid.grid.spec import SpecError, parse_spec, spec_hash

    plain = {"name": "m", "axes": {"seed": [0]}}
    with pytest.raises(
        SpecError, match=r"^metric: unknown value 'ber'; allowed: ber_ratio_map, rate_gap$"
    ):
        parse_spec({**plain, "metric": "ber"})
    gap = parse_spec({**plain, "metric": "rate_gap"})
    assert gap.metric == "rate_gap" and parse_spec(plain).metric == "ber_ratio_map"
    assert spec_hash(gap) == spec_hash(parse_spec(plain))  # the same trials


def test_ratios_spanning_more_than_ten_times_get_a_log_axis():
    from symgrid.analysis.effect_plots import needs_log

    assert needs_log(np.array([1.01, 1.2, 40.0])) and not needs_log(np.array([1.0, 1.5, 9.0]))
