"""The experiment query language and run diff: properties over generated conditions, times,
runs and configs, plus the error messages a person at a terminal sees."""

from __future__ import annotations

import json
import math
import operator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.experiments import (
    OPERATORS,
    ExperimentRun,
    MetricCondition,
    QueryError,
    RunFilter,
    criterion_met,
    diff_runs,
    flatten_config,
    parse_criterion,
    parse_metric_condition,
    parse_tag,
    parse_time,
    parse_time_range,
    run_to_dict,
    runs_table,
    search_runs,
)

PYTHON_OPS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)

metric_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True).filter(
    lambda name: name.lower() != "and"
)
operators = st.sampled_from(OPERATORS)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
spaces = st.sampled_from(["", " ", "  ", "\t"])


def value_text(value: float, style: str) -> str:
    if style == "repr":
        return repr(value)
    if style == "e":
        return f"{value:.17e}"
    return f"{value:.17g}"


@settings(max_examples=300)
@given(
    metric_names,
    operators,
    finite,
    st.sampled_from(["repr", "e", "g"]),
    spaces,
    spaces,
    spaces,
    spaces,
)
def test_condition_round_trips(
    name: str, op: str, value: float, style: str, s1: str, s2: str, s3: str, s4: str
) -> None:
    text = f"{s1}{name}{s2}{op}{s3}{value_text(value, style)}{s4}"
    condition = parse_metric_condition(text)
    assert condition == MetricCondition(name, op, value)
    assert parse_metric_condition(str(condition)) == condition


@given(st.integers(min_value=-(10**6), max_value=10**6), operators)
def test_integer_values_parse(value: int, op: str) -> None:
    assert parse_metric_condition(f"f1{op}{value}").value == float(value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty string"),
        ("f1", "no comparison operator in 'f1'"),
        ("f1=0.8", "use '==' for equality"),
        ("f1=>0.8", "did you mean '>='"),
        ("1f>0.8", "expected a metric name"),
        ("f-1>0.8", "got 'f-1'"),
        ("f1>abc", "expected a number after '>', got 'abc'"),
        ("f1>", "expected a number after '>', got ''"),
        ("f1>0.8 x", "got '0.8 x'"),
        ("f1>nan", "got 'nan'"),
        ("f1>1e999", "finite number"),
        ("f1>>0.8", "got '>0.8'"),
        ("f1>1_000", "got '1_000'"),
    ],
)
def test_bad_conditions_say_what_was_expected(text: str, fragment: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse_metric_condition(text)
    assert fragment in str(raised.value)


@given(st.text(alphabet=" abcxyz019.,;:-+*/()[]{}'\"", max_size=20))
def test_text_without_an_operator_is_rejected(text: str) -> None:
    with pytest.raises(QueryError):
        parse_metric_condition(text)


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_query_error(text: str) -> None:
    try:
        condition = parse_metric_condition(text)
    except QueryError as error:
        assert str(error)
    else:
        assert condition.op in OPERATORS
        assert math.isfinite(condition.value)


@given(metric_names, operators, finite, finite)
def test_holds_agrees_with_python(name: str, op: str, threshold: float, value: float) -> None:
    condition = MetricCondition(name, op, threshold)
    assert condition.holds({name: value}) is PYTHON_OPS[op](value, threshold)
    assert condition.holds({}) is None


def test_unknown_operator_is_refused() -> None:
    with pytest.raises(QueryError, match="'=~'"):
        MetricCondition("f1", "=~", 0.5)


conditions = st.builds(MetricCondition, metric_names, operators, finite)


@given(st.lists(conditions, min_size=1, max_size=5), st.sampled_from([",", ", ", " and ", " AND "]))
def test_criterion_round_trips(parsed: list[MetricCondition], separator: str) -> None:
    text = separator.join(str(condition) for condition in parsed)
    assert parse_criterion(text) == parsed


@given(
    st.lists(conditions, min_size=1, max_size=5),
    st.dictionaries(metric_names, finite, max_size=6),
)
def test_criterion_met_is_the_conjunction(
    parsed: list[MetricCondition], metrics: dict[str, float]
) -> None:
    text = ", ".join(str(condition) for condition in parsed)
    met = criterion_met(text, metrics)
    if any(condition.metric not in metrics for condition in parsed):
        assert met is None
    else:
        assert met is all(PYTHON_OPS[c.op](metrics[c.metric], c.value) for c in parsed)


def test_criterion_examples() -> None:
    criterion = "pr_auc>=0.95, false_alarm_rate<0.02"
    assert criterion_met(criterion, {"pr_auc": 0.96, "false_alarm_rate": 0.01}) is True
    assert criterion_met(criterion, {"pr_auc": 0.96, "false_alarm_rate": 0.03}) is False
    assert criterion_met(criterion, {"pr_auc": 0.96}) is None
    assert criterion_met("", {"pr_auc": 1.0}) is None
    assert criterion_met("   ", {"pr_auc": 1.0}) is None
    assert parse_criterion("") == []
    with pytest.raises(QueryError, match="empty condition"):
        parse_criterion("f1>0.5,,pr_auc>0.9")
    with pytest.raises(QueryError, match="'pr_auc>x'"):
        parse_criterion("f1>0.5 and pr_auc>x")


# --- time -------------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments)
def test_iso_times_parse_to_utc(moment: datetime) -> None:
    assert parse_time(moment.isoformat()) == moment
    assert parse_time(moment.replace(tzinfo=None).isoformat()) == moment  # naive means UTC
    assert parse_time(moment.date().isoformat()) == datetime(
        moment.year, moment.month, moment.day, tzinfo=UTC
    )


def test_offsets_and_relative_times() -> None:
    assert parse_time("2026-01-13T10:00+02:00") == datetime(2026, 1, 13, 8, 0, tzinfo=UTC)
    assert parse_time("2026-01-13T08:00Z") == datetime(2026, 1, 13, 8, 0, tzinfo=UTC)
    assert parse_time("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_time(" 12h ", now=NOW) == NOW - timedelta(hours=12)
    assert parse_time("30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_time("2w", now=NOW) == NOW - timedelta(weeks=2)
    assert parse_time("now", now=NOW) == NOW
    before = datetime.now(UTC)
    assert before - timedelta(days=1, seconds=5) <= parse_time("1d") <= datetime.now(UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "7x", "-7d", "2026-13-01", "7 days"])
def test_bad_times_are_rejected(text: str) -> None:
    with pytest.raises(QueryError, match="expected an ISO date"):
        parse_time(text)


@given(moments, moments)
def test_time_ranges(first: datetime, second: datetime) -> None:
    start, end = sorted([first, second])
    assert parse_time_range(f"{start.isoformat()}..{end.isoformat()}") == (start, end)
    assert parse_time_range(f"{start.isoformat()}..") == (start, None)
    assert parse_time_range(f"..{end.isoformat()}") == (None, end)
    if start != end:
        with pytest.raises(QueryError, match="before its end"):
            parse_time_range(f"{end.isoformat()}..{start.isoformat()}")


def test_relative_ranges_and_bad_ranges() -> None:
    assert parse_time_range("7d..1d", now=NOW) == (NOW - timedelta(days=7), NOW - timedelta(days=1))
    for text in ("2026-01-13", "..", " .. "):
        with pytest.raises(QueryError, match="range"):
            parse_time_range(text)
    with pytest.raises(QueryError, match="'soon'"):
        parse_time_range("2026-01-01..soon")


def test_tags() -> None:
    assert parse_tag("team=sre") == ("team", "sre")
    assert parse_tag(" note = a=b ") == ("note", "a=b")
    assert parse_tag("flag=") == ("flag", "")
    for text in ("team", "=sre", ""):
        with pytest.raises(QueryError, match="key=value"):
            parse_tag(text)


# --- search -----------------------------------------------------------------------------------


def make_run(
    run_id: str = "r",
    *,
    model_name: str = "anomaly_detector",
    at: datetime = NOW,
    config: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    dataset_version: str = "aaaa1111",
    feature_set_version: str = "ffff0000",
    model_version: int | None = 1,
    capsule_id: str | None = None,
) -> ExperimentRun:
    return ExperimentRun(
        run_id=run_id,
        model_name=model_name,
        model_version=model_version,
        capsule_id=capsule_id,
        at=at,
        config=config or {},
        metrics=metrics if metrics is not None else {},
        tags=tags or {},
        dataset_version=dataset_version,
        feature_set_version=feature_set_version,
    )


runs_strategy = st.lists(
    st.builds(
        make_run,
        run_id=st.uuids().map(str),
        model_name=st.sampled_from(["anomaly_detector", "forecaster"]),
        at=moments,
        metrics=st.dictionaries(st.sampled_from(["f1", "pr_auc", "far"]), finite, max_size=3),
        tags=st.dictionaries(st.sampled_from(["team", "goal"]), st.sampled_from(["a", "b"])),
        dataset_version=st.sampled_from(["aaaa1111", "aaab2222", "bbbb3333"]),
        feature_set_version=st.sampled_from(["ffff0000", "eeee0000"]),
    ),
    max_size=12,
)
filters = st.builds(
    RunFilter,
    model_name=st.none() | st.sampled_from(["anomaly_detector", "forecaster"]),
    dataset_version=st.none() | st.sampled_from(["aaa", "aaaa1111", "bbbb", "c"]),
    feature_set_version=st.none() | st.sampled_from(["ffff", "e"]),
    conditions=st.lists(
        st.builds(MetricCondition, st.sampled_from(["f1", "pr_auc", "far"]), operators, finite),
        max_size=2,
    ).map(tuple),
    since=st.none() | moments,
    until=st.none() | moments,
    tags=st.lists(
        st.tuples(st.sampled_from(["team", "goal"]), st.sampled_from(["a", "b"])), max_size=2
    ).map(tuple),
)


def reference_match(run: ExperimentRun, run_filter: RunFilter) -> bool:
    checks = [
        run_filter.model_name in (None, run.model_name),
        run_filter.dataset_version is None
        or run.dataset_version[: len(run_filter.dataset_version)] == run_filter.dataset_version,
        run_filter.feature_set_version is None
        or run.feature_set_version[: len(run_filter.feature_set_version)]
        == run_filter.feature_set_version,
        run_filter.since is None or run.at >= run_filter.since,
        run_filter.until is None or run.at < run_filter.until,
        all(run.tags.get(key) == value for key, value in run_filter.tags),
        all(
            c.metric in run.metrics and PYTHON_OPS[c.op](run.metrics[c.metric], c.value)
            for c in run_filter.conditions
        ),
    ]
    return all(checks)


@settings(max_examples=200)
@given(runs_strategy, filters)
def test_search_keeps_exactly_the_matching_runs_oldest_first(
    runs: list[ExperimentRun], run_filter: RunFilter
) -> None:
    found = search_runs(runs, run_filter)
    assert sorted(run.run_id for run in found) == sorted(
        run.run_id for run in runs if reference_match(run, run_filter)
    )
    assert [run.at for run in found] == sorted(run.at for run in found)


@given(runs_strategy)
def test_an_empty_filter_keeps_everything(runs: list[ExperimentRun]) -> None:
    assert len(search_runs(runs, RunFilter())) == len(runs)


def test_missing_metric_excludes_and_naive_times_are_utc() -> None:
    with_f1 = make_run("a", metrics={"f1": 0.9}, at=datetime(2026, 1, 10, 12))
    without = make_run("b", metrics={"pr_auc": 0.99}, at=datetime(2026, 1, 11, tzinfo=UTC))
    only_f1 = RunFilter(conditions=(MetricCondition("f1", ">", 0.5),))
    assert search_runs([without, with_f1], only_f1) == [with_f1]
    negated = RunFilter(conditions=(MetricCondition("f1", "!=", 0.5),))
    assert search_runs([without, with_f1], negated) == [with_f1]
    # Naive bounds and times are UTC; the end is exclusive, so adjacent windows tile.
    first = RunFilter(since=datetime(2026, 1, 10, 12, tzinfo=UTC), until=datetime(2026, 1, 11))
    second = RunFilter(since=datetime(2026, 1, 11), until=datetime(2026, 1, 12, tzinfo=UTC))
    assert search_runs([without, with_f1], first) == [with_f1]
    assert search_runs([without, with_f1], second) == [without]


# --- diff -------------------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=5)
configs = st.recursive(
    json_leaves,
    lambda children: st.dictionaries(
        st.text(alphabet="abcxyz_", min_size=1, max_size=4), children, max_size=4
    ),
    max_leaves=12,
).filter(lambda value: isinstance(value, dict))


def unflatten_get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = node[part]
    return node


@given(configs)
def test_flatten_config_paths_lead_to_the_leaves(config: dict[str, Any]) -> None:
    for path, value in flatten_config(config).items():
        assert unflatten_get(config, path) == value


@given(configs, configs)
def test_config_diff_lists_exactly_the_changed_paths(
    config_a: dict[str, Any], config_b: dict[str, Any]
) -> None:
    diff = diff_runs(make_run("a", config=config_a), make_run("b", config=config_b))
    flat_a, flat_b = flatten_config(config_a), flatten_config(config_b)
    changed = {
        path
        for path in set(flat_a) | set(flat_b)
        if path not in flat_a or path not in flat_b or flat_a[path] != flat_b[path]
    }
    assert [path for path, _, _ in diff.config] == sorted(changed)
    for path, a, b in diff.config:
        assert (a, b) == (flat_a.get(path), flat_b.get(path))
    assert diff_runs(make_run("a", config=config_a), make_run("b", config=config_a)).config == []
    json.dumps(diff.to_dict())


@given(
    st.dictionaries(st.sampled_from(["f1", "pr_auc", "recall"]), finite),
    st.dictionaries(st.sampled_from(["f1", "pr_auc", "precision"]), finite),
)
def test_metric_deltas_are_b_minus_a(
    metrics_a: dict[str, float], metrics_b: dict[str, float]
) -> None:
    diff = diff_runs(make_run("a", metrics=metrics_a), make_run("b", metrics=metrics_b))
    assert [name for name, *_ in diff.metrics] == sorted(set(metrics_a) | set(metrics_b))
    for name, a, b, delta in diff.metrics:
        assert (a, b) == (metrics_a.get(name), metrics_b.get(name))
        if a is None or b is None:
            assert delta is None
        else:
            assert delta == b - a


def test_diff_of_two_training_runs() -> None:
    config_a = {
        "training_set": {"holdout_days": 4, "seed": 17, "until": "2026-01-13"},
        "candidate_model": {"n_estimators": 200, "seed": 7},
    }
    config_b = {
        "training_set": {"holdout_days": 4, "seed": 17, "until": "2026-01-14"},
        "candidate_model": {"n_estimators": 400, "seed": 7, "max_depth": 8},
    }
    a = make_run("run-a", config=config_a, metrics={"f1": 0.8, "pr_auc": 0.9}, capsule_id="c1")
    b = make_run(
        "run-b",
        config=config_b,
        metrics={"f1": 0.85, "pr_auc": 0.9},
        dataset_version="bbbb3333",
        model_version=2,
        capsule_id="c2",
        tags={"goal": "depth"},
    )
    diff = diff_runs(a, b, environment_lines=["~ numpy 2.1.0 -> 2.2.0"])
    assert diff.config == [
        ("candidate_model.max_depth", None, 8),
        ("candidate_model.n_estimators", 200, 400),
        ("training_set.until", "2026-01-13", "2026-01-14"),
    ]
    assert diff.data == [
        ("dataset_version", "aaaa1111", "bbbb3333"),
        ("model_version", 1, 2),
        ("capsule_id", "c1", "c2"),
    ]
    assert diff.metrics[0][0] == "f1"
    assert diff.metrics[0][3] == pytest.approx(0.05)
    assert diff.metrics[1] == ("pr_auc", 0.9, 0.9, 0.0)
    assert diff.tags == [("goal", None, "depth")]
    assert not diff.is_empty
    record = diff.to_dict()
    assert record["a"] == "run-a" and record["environment"] == ["~ numpy 2.1.0 -> 2.2.0"]
    assert record["config"][1] == {"path": "candidate_model.n_estimators", "a": 200, "b": 400}
    assert record["identical"] is False
    same = diff_runs(a, a)
    assert same.is_empty and same.to_dict()["identical"] is True


def test_a_key_present_as_none_differs_from_an_absent_key() -> None:
    diff = diff_runs(make_run("a", config={"x": None}), make_run("b", config={}))
    assert diff.config == [("x", None, None)]


def test_runs_table_and_json_record() -> None:
    run = ExperimentRun(
        run_id="0123456789abcdef",
        model_name="anomaly_detector",
        model_version=3,
        capsule_id=None,
        at=datetime(2026, 1, 13, 8, 30),
        config={},
        metrics={"f1": 0.81234, "pr_auc": 0.95, "false_alarm_rate": 0.01},
        dataset_version="d" * 64,
        feature_set_version="f" * 64,
        hypothesis="more trees " * 10,
        success_criterion="pr_auc>=0.95",
        criterion_met=True,
    )
    header, row = runs_table([run])
    assert header[0] == "run" and len(header) == len(row)
    assert row[:4] == ["01234567", "2026-01-13 08:30", "anomaly_detector v3", "d" * 12]
    assert row[5:9] == ["0.812", "0.950", "0.010", "met"]
    assert row[-1].endswith("...") and len(row[-1]) <= 48
    record = run_to_dict(run)
    assert record["at"] == "2026-01-13T08:30:00+00:00"
    assert json.loads(json.dumps(record))["config"] == {}
