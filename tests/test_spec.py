"""Grid specs: parsing, expansion, exclusion, reproducibility, presets and one-line errors."""

import functools
import math
import time
from pathlib import Path

import pytest
from symgrid.grid.source import (
    PRESETS_DIR,
    SpecError,
    load_yaml,
    preset_names,
    resolve_spec_path,
)
from symgrid.grid.spec import (
    MAX_TRIALS_WITHOUT_YES,
    Resources,
    describe,
    estimate,
    expand,
    load_spec,
    parse_spec,
    resolved_yaml,
    spec_hash,
)
from symgrid.trainables.config import config_to_dict, parse_trial_config

preset = functools.cache(load_spec)  # the lecture preset takes seconds to validate
BAD_SPECS = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))

SMALL = """
name: small
description: a test grid
base:
  train: {symbols: 4096, batch_size: 512, epochs: 3}
  model: {hidden: [8]}
  optimizer: {lr: 1e-3}
  loss: bce
axes:
  loss: [bce, {name: smooth_l1, beta: 0.5}, mse]
  regularization: [none, [l2, label_smoothing], {name: dropout, p: 0.2}]
  train.ebno_db: [0, [-20, 20]]
exclude:
  - {loss: smooth_l1, regularization: label_smoothing}
  - {loss: mse, regularization: label_smoothing}
  - {loss: mse, regularization: dropout, train.ebno_db: 0}
resources: {cpu: 2, gpu: 0.25}
max_failures: 1
"""


def small(text: str = SMALL, **kwargs):
    return parse_spec(load_yaml(text), source=text, **kwargs)


def test_yaml_reads_yaml_1_2_floats_and_only_safe_tags():
    data = load_yaml("a: 1e-4\nb: 2e7\nc: 1.0e3\nd: 12\ne: .5\nf: 1e400")
    assert data == {"a": 1e-4, "b": 2e7, "c": 1000.0, "d": 12, "e": 0.5, "f": float("inf")}
    assert isinstance(data["b"], float) and isinstance(data["d"], int)
    with pytest.raises(SpecError, match="python tags"):
        load_yaml("x: !!python/object/apply:os.system [echo hi]")
    with pytest.raises(SpecError, match=r"^yaml line 2, column 1: duplicate key 'x'$"):
        load_yaml("x: 1\nx: 2")


def test_small_spec_parses_to_its_fields():
    spec = small()
    assert spec.name == "small" and spec.description == "a test grid"
    assert list(spec.axes) == ["loss", "regularization", "train.ebno_db"]
    assert spec.resources == Resources(cpu=2.0, gpu=0.25) and spec.max_failures == 1
    assert spec.source == SMALL and spec.base["optimizer"] == {"lr": 1e-4 * 10}
    # 3 x 3 x 2 = 18 crossed; 2 + 2 label-smoothing trials and 1 (mse, dropout, 0 dB) excluded
    assert spec.trial_count == 13


def test_display_values_keep_numbers_unless_the_axis_mixes_types():
    text = "name: d\naxes:\n  train.ebno_db: [0, 8.5]\n  model.hidden: [[8], [16, 16]]\n"
    trials = expand(small(text))
    assert [t.axes["train.ebno_db"] for t in trials[::2]] == [0, 8.5]
    assert [t.axes["model.hidden"] for t in trials[:2]] == ["[8]", "[16, 16]"]


def test_expansion_order_ids_and_configs():
    spec = small()
    trials = expand(spec)
    assert [t.trial_id for t in trials] == [f"t{i:04d}" for i in range(13)]
    assert trials[0].axes == {"loss": "bce", "regularization": "none", "train.ebno_db": "0"}
    assert trials[1].axes == {"loss": "bce", "regularization": "none", "train.ebno_db": "[-20, 20]"}
    assert trials[2].axes["regularization"] == "l2+label_smoothing"
    assert trials[4].axes["regularization"] == "dropout(p=0.2)"
    assert trials[6].axes["loss"] == "smooth_l1(beta=0.5)"
    base = config_to_dict(parse_trial_config(spec.base))
    for trial in trials:
        config = trial.config
        assert config == config_to_dict(parse_trial_config(config))  # fully resolved
        expected_ebno = 0.0 if trial.axes["train.ebno_db"] == "0" else [-20.0, 20.0]
        assert config["train"]["ebno_db"] == expected_ebno
        assert {k: v for k, v in config["train"].items() if k != "ebno_db"} == {
            k: v for k, v in base["train"].items() if k != "ebno_db"
        }
        for key in ("modulation", "model", "optimizer", "scheduler", "eval", "seed"):
            assert config[key] == base[key]
    assert trials[6].config["loss"] == {"name": "smooth_l1", "beta": 0.5}
    assert trials[2].config["regularization"][1] == {"name": "label_smoothing", "epsilon": 0.1}


def test_exclusion_bare_names_match_options_and_lists():
    combos = [tuple(t.axes.values()) for t in expand(small())]
    assert not any(c[0].startswith("smooth_l1") and "label_smoothing" in c[1] for c in combos)
    assert ("mse", "dropout(p=0.2)", "0") not in combos
    assert ("mse", "dropout(p=0.2)", "[-20, 20]") in combos
    rule = "exclude:\n  - {loss: smooth_l1}\n  - {regularization: l2}\n"
    spec = small(SMALL.split("exclude:")[0] + rule + "resources: {gpu: auto}\n")
    left = {(t.axes["loss"], t.axes["regularization"]) for t in expand(spec)}
    assert left == {(loss, reg) for loss in ("bce", "mse") for reg in ("none", "dropout(p=0.2)")}


def test_empty_axes_is_one_trial_and_sections_merge():
    assert [t.axes for t in expand(small("name: one\nbase: {seed: 3}\n"))] == [{}]
    text = "name: s\nbase: {train: {symbols: 8192, epochs: 4}}\naxes:\n  train: [{epochs: 9}]\n"
    (trial,) = expand(small(text))
    assert trial.config["train"]["symbols"] == 8192 and trial.config["train"]["epochs"] == 9
    assert trial.axes == {"train": "{epochs: 9}"}


def test_spec_hash_is_stable_and_sensitive():
    assert spec_hash(small()) == spec_hash(small()) and len(spec_hash(small())) == 12
    assert spec_hash(small()) != spec_hash(
        small(SMALL.replace("max_failures: 1", "max_failures: 2"))
    )
    assert spec_hash(small()) != spec_hash(small(SMALL.replace("[0, [-20, 20]]", "[[-20, 20], 0]")))
    assert spec_hash(small()) != spec_hash(small(SMALL.replace("beta: 0.5", "beta: 0.25")))


LECTURE_SLOW = [  # lecture: 4,050 trials to validate twice
    pytest.param(n, marks=pytest.mark.slow) if n == "lecture" else n for n in preset_names()
]


@pytest.mark.parametrize("name", ["small", *LECTURE_SLOW])
def test_resolved_yaml_round_trips(name):
    spec = small() if name == "small" else preset(name)
    again = small(resolved_yaml(spec))
    assert again.base == config_to_dict(parse_trial_config(spec.base))  # every default written
    assert expand(again) == expand(spec) and spec_hash(again) == spec_hash(spec)


def test_resolved_yaml_keeps_sections_an_axis_touches():
    # A resolved base would write sgd's momentum, which the adam trials reject.
    text = (
        "name: opt\nbase: {optimizer: {name: sgd, lr: 0.1}}\naxes: {optimizer.name: [sgd, adam]}\n"
    )
    spec = small(text)
    assert expand(small(resolved_yaml(spec))) == expand(spec)


def test_large_grids_need_allow_large():
    # 101 x 100 crossed trials; the exclude rules keep the 101 with one epoch (cheap to validate).
    text = "name: big\naxes:\n  seed: [" + ", ".join(map(str, range(101))) + "]\n"
    text += "  train.epochs: [" + ", ".join(map(str, range(1, 101))) + "]\nexclude:\n"
    text += "".join(f"  - {{train.epochs: {epochs}}}\n" for epochs in range(2, 101))
    with pytest.raises(SpecError, match=f"10,100 trials .* more than {MAX_TRIALS_WITHOUT_YES:,}"):
        small(text)
    assert small(text, allow_large=True).trial_count == 101


def test_presets_load_and_validate():
    assert {"quick", "notebook", "lecture", "bias_variance", "overfitting"} <= set(preset_names())
    for name in preset_names():
        spec = preset(name)
        assert spec.name == name and len(spec.description) > 80
        assert resolve_spec_path(name) == PRESETS_DIR / f"{name}.yaml"
    for name in set(preset_names()) - {"lecture"}:  # no exclude rules: the full crossing
        spec = preset(name)
        assert not spec.exclude
        assert spec.trial_count == math.prod(len(values) for values in spec.axes.values())
    quick = preset("quick")
    assert all(len(quick.axes[a]) >= 3 for a in ("scheduler", "loss", "regularization"))
    assert len(quick.axes["seed"]) >= 3  # fewer seeds separate nothing (analysis.inference)
    assert preset("notebook").trial_count == 1
    lecture = preset("lecture")  # README quotes its 2,250 trials: 450 settings x 5 seeds
    assert lecture.trial_count == 2250 < MAX_TRIALS_WITHOUT_YES
    crossed = math.prod(len(values) for values in lecture.axes.values())
    kept = {tuple(str(v) for v in t.axes.values()) for t in lecture.trials}
    assert len(kept) == 2250 < crossed  # distinct settings; the exclude rules removed the rest


def test_describe_and_estimate():
    spec = preset("quick")
    trials = expand(spec)
    cost = estimate(spec, trials)
    epochs, symbols = trials[0].config["train"]["epochs"], trials[0].config["train"]["symbols"]
    assert cost["trials"] == len(trials) and cost["epochs"] == len(trials) * epochs
    assert cost["train_symbols"] == len(trials) * epochs * symbols
    text = describe(spec)
    assert f"trials: {len(trials)} ({len(trials)} crossed, 0 excluded)" in text
    assert "scheduler" in text and "l2+dropout" in text and "cpu 1, gpu auto" in text


def test_resolve_spec_path_suggests_presets(tmp_path):
    with pytest.raises(SpecError, match=r"quik: no such spec file or preset; .*'quick'"):
        resolve_spec_path("quik")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\n")
    assert resolve_spec_path(str(path)) == path and load_spec(str(path)).trial_count == 1


def test_bad_spec_corpus_names_a_distinct_error_per_file():
    """Each file of the corpus says which error it expects, and no two expect the same one."""
    expected = [p.read_text().splitlines()[0] for p in BAD_SPECS]
    assert all(line.startswith("# expect: ") and len(line) > 12 for line in expected)
    assert len(set(expected)) == len(expected) >= 24


@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_bad_spec_gives_one_line_error(path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert time.perf_counter() - started < 2.0  # fails before expanding anything large
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    assert expected in text


def test_notebook_preset_is_the_shipped_notebook_example():
    from symgrid.trainables.config import config_to_dict, parse_trial_config

    example = Path(__file__).parents[1] / "examples" / "notebook.yaml"
    (trial,) = expand(load_spec("notebook"))
    assert trial.config == config_to_dict(parse_trial_config(load_yaml(example)))
