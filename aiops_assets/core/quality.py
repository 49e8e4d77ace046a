"""Data-quality suites on Great Expectations 1.x, their results, and the quarantine area.

A suite is a versioned YAML file (see ``core/suites/``): a name, a version and a list of GE
expectations, each with a severity. Its SHA-256 is recorded with every result, so a result can be
traced to the exact rules that produced it. Suites run in an ephemeral GE context (nothing on disk,
no progress bars, no analytics): the data never leaves the process.

A failed ERROR expectation stops bad data at the door. The snapshot that failed is not thrown away:
it goes to the quarantine area of the artifact store with its report, so it can be inspected,
fixed upstream and re-ingested, and the last good snapshot of that partition stays current.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiops_assets.core.markdown import md_code, md_text
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.core.yaml_mapping import parse_yaml_mapping

SUITES_DIR = Path(__file__).parent / "suites"
DEFAULT_TELEMETRY_SUITE = SUITES_DIR / "telemetry.yaml"
DEFAULT_FEATURES_SUITE = SUITES_DIR / "features.yaml"

FAILING_ROWS_SAMPLE = 5
QUARANTINE_PREFIX = "quarantine"


class Severity(StrEnum):
    """ERROR stops downstream use of the data; WARN is reported and never blocks."""

    ERROR = "ERROR"
    WARN = "WARN"


class SuiteFormatError(ValueError):
    """A suite file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One entry of a suite file: a GE expectation type, its arguments and a severity."""

    type: str
    kwargs: Mapping[str, Any]
    severity: Severity
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the expectation is about, for naming them in reports."""
        names: list[str] = []
        for key in ("column", "column_A", "column_B"):
            if key in self.kwargs:
                names.append(str(self.kwargs[key]))
        names.extend(str(name) for name in self.kwargs.get("column_list", ()))
        return tuple(names)


@dataclass(frozen=True)
class QualitySuite:
    """A parsed suite file; ``sha256`` is the hash of the file's bytes."""

    name: str
    version: int
    expectations: tuple[ExpectationSpec, ...]
    sha256: str
    path: str
    slice_by: str | None = None
    row_id_columns: tuple[str, ...] = ()
    description: str = ""

    @property
    def version_id(self) -> str:
        return f"{self.name}-v{self.version}-{self.sha256[:12]}"

    def severities(self) -> list[Severity]:
        present = {spec.severity for spec in self.expectations}
        return [level for level in Severity if level in present]

    def only(self, severity: Severity) -> QualitySuite:
        return QualitySuite(
            name=self.name,
            version=self.version,
            expectations=tuple(spec for spec in self.expectations if spec.severity == severity),
            sha256=self.sha256,
            path=self.path,
            slice_by=self.slice_by,
            row_id_columns=self.row_id_columns,
            description=self.description,
        )


def load_suite(
    path: str | os.PathLike[str], *, default_severity: Severity = Severity.ERROR
) -> QualitySuite:
    """Parse and validate a suite file; expectations without a severity get ``default_severity``."""
    suite_path = Path(path)
    try:
        raw_bytes = suite_path.read_bytes()
    except OSError as error:
        raise SuiteFormatError(f"cannot read suite file {suite_path}: {error}") from error
    document = parse_yaml_mapping(
        raw_bytes,
        what=f"suite file {suite_path}",
        error=SuiteFormatError,
        expected="a mapping with name, version, expectations",
    )
    for key in ("name", "version", "expectations"):
        if key not in document:
            raise SuiteFormatError(f"{suite_path}: missing top-level key {key!r}")
    entries = document["expectations"]
    if not isinstance(entries, list) or not entries:
        raise SuiteFormatError(f"{suite_path}: 'expectations' must be a non-empty list")
    known_types = _known_expectation_types()
    specs: list[ExpectationSpec] = []
    for position, entry in enumerate(entries, start=1):
        where = f"{suite_path}: expectation #{position}"
        if not isinstance(entry, dict) or "type" not in entry:
            raise SuiteFormatError(f"{where}: each entry needs a 'type'")
        expectation_type = str(entry["type"])
        if expectation_type not in known_types:
            raise SuiteFormatError(f"{where}: unknown Great Expectations type {expectation_type!r}")
        severity_text = str(entry.get("severity", default_severity.value)).upper()
        try:
            severity = Severity(severity_text)
        except ValueError as error:
            raise SuiteFormatError(
                f"{where}: severity must be ERROR or WARN, not {severity_text!r}"
            ) from error
        kwargs = entry.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise SuiteFormatError(f"{where}: 'kwargs' must be a mapping")
        specs.append(
            ExpectationSpec(
                type=expectation_type,
                kwargs=kwargs,
                severity=severity,
                description=str(entry.get("description", "")),
            )
        )
    return QualitySuite(
        name=str(document["name"]),
        version=int(document["version"]),
        expectations=tuple(specs),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        path=str(suite_path),
        slice_by=document.get("slice_by"),
        row_id_columns=tuple(document.get("row_id_columns", ())),
        description=str(document.get("description", "")),
    )


@dataclass(frozen=True)
class ExpectationOutcome:
    """What one expectation found, in the shape a report table needs."""

    expectation: str
    columns: tuple[str, ...]
    severity: Severity
    passed: bool
    observed_value: str
    unexpected_count: int
    unexpected_percent: float
    failing_rows: tuple[dict[str, Any], ...]
    slices: Mapping[str, int]
    error: str = ""
    description: str = ""

    def headline(self) -> str:
        where = f" on {', '.join(self.columns)}" if self.columns else ""
        if self.error:
            return f"{self.expectation}{where}: could not be evaluated: {self.error}"
        details = (
            f"{self.unexpected_count} row(s) ({self.unexpected_percent:.2f}%)"
            if self.unexpected_count
            else f"observed {self.observed_value}"
        )
        slices = f"; slices: {_format_slices(self.slices)}" if self.slices else ""
        rows = f"; first rows: {_format_rows(self.failing_rows)}" if self.failing_rows else ""
        return f"{self.expectation}{where}: {details}{slices}{rows}"


@dataclass(frozen=True)
class SuiteReport:
    """The outcome of one suite run on one frame."""

    suite_name: str
    suite_version: int
    suite_sha256: str
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]
    parameters: Mapping[str, str] = field(default_factory=dict)

    def failures(self, severity: Severity | None = None) -> list[ExpectationOutcome]:
        return [
            outcome
            for outcome in self.outcomes
            if not outcome.passed and (severity is None or outcome.severity == severity)
        ]

    def passed(self, severity: Severity | None = None) -> bool:
        return not self.failures(severity)

    def implicated_slices(self, severity: Severity | None = None) -> dict[str, int]:
        total: Counter[str] = Counter()
        for outcome in self.failures(severity):
            total.update(outcome.slices)
        return dict(total.most_common())

    def summary_markdown(self, severity: Severity | None = None, *, context: str = "") -> str:
        scope = f" ({severity.value})" if severity else ""
        failures = self.failures(severity)
        checked = [
            outcome for outcome in self.outcomes if severity is None or outcome.severity == severity
        ]
        lines = [
            f"**Suite {md_code(self.suite_name)} v{self.suite_version}**{scope}: "
            f"{len(checked) - len(failures)}/{len(checked)} expectations passed on {self.rows} rows"
            + (f" ({md_text(context)})" if context else ""),
            "",
            f"Suite SHA-256 `{self.suite_sha256[:16]}`",
        ]
        if failures:
            lines += ["", "Failed:"]
            # Column names, slice values and failing rows are data: escaped, they stay on their line.
            lines += [f"- {md_text(outcome.headline())}" for outcome in failures]
            slices = self.implicated_slices(severity)
            if slices:
                lines += ["", f"Implicated slices: {md_text(_format_slices(slices))}"]
        return "\n".join(lines)

    def failure_message(self, severity: Severity, *, subject: str) -> str:
        """One paragraph for logs and errors: what, which columns, which rows, which expectation."""
        failures = self.failures(severity)
        if not failures:
            return f"{subject}: all {severity.value} expectations passed"
        parts = [outcome.headline() for outcome in failures]
        return (
            f"{subject} failed {len(failures)} {severity.value} expectation(s) of suite {self.suite_name} v{self.suite_version}: "
            + " | ".join(parts)
        )

    def table_rows(self, severity: Severity | None = None) -> list[dict[str, Any]]:
        return [
            {
                "expectation": outcome.expectation,
                "columns": ", ".join(outcome.columns),
                "severity": outcome.severity.value,
                "passed": outcome.passed,
                "observed": outcome.observed_value,
                "unexpected_count": outcome.unexpected_count,
                "unexpected_percent": round(outcome.unexpected_percent, 4),
                "slices": _format_slices(outcome.slices),
                "failing_rows": _format_rows(outcome.failing_rows),
            }
            for outcome in self.outcomes
            if severity is None or outcome.severity == severity
        ]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcomes"] = [
            {
                **asdict(outcome),
                "severity": outcome.severity.value,
                "slices": dict(outcome.slices),
                "failing_rows": [_jsonable_row(row) for row in outcome.failing_rows],
            }
            for outcome in self.outcomes
        ]
        data["parameters"] = dict(self.parameters)
        return data


def window_parameters(start: pd.Timestamp, end: pd.Timestamp) -> dict[str, pd.Timestamp]:
    """Suite parameters for a time window ``[start, end)``.

    ``partition_last_hour`` lets a suite ask that the window's last hour be present, which is how a
    file cut short at a line break is told apart from a complete day.
    """
    last_hour = (
        max(start, end - pd.Timedelta(hours=1))
        if end > pd.Timestamp.min + pd.Timedelta(hours=1)
        else start
    )
    return {"partition_start": start, "partition_end": end, "partition_last_hour": last_hour}


def validate_frame(
    frame: pd.DataFrame,
    suite: QualitySuite,
    *,
    parameters: Mapping[str, Any] | None = None,
) -> SuiteReport:
    """Run ``suite`` on ``frame`` and return a report; never raises for bad data, only for a bad suite.

    ``parameters`` fill ``{"$PARAMETER": name}`` placeholders in the suite (for example the
    partition's time window).
    """
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    batch_definition = _batch_definition()
    expectations = [
        ExpectationConfiguration(
            type=spec.type,
            kwargs=dict(spec.kwargs),
            meta={"severity": spec.severity.value, "aiops_position": position},
        ).to_domain_obj()
        for position, spec in enumerate(suite.expectations)
    ]
    ge_suite = gx.ExpectationSuite(name=suite.name, expectations=expectations)
    id_columns = [column for column in (*suite.row_id_columns,) if column in frame.columns]
    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if id_columns:
        result_format["unexpected_index_column_names"] = id_columns
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(
        ge_suite, result_format=result_format, expectation_parameters=dict(parameters or {})
    )
    # GE groups results by domain, not in suite order; the position stored in each
    # expectation's meta ties every result back to its entry in the suite file.
    by_position = {
        int(result.expectation_config.meta["aiops_position"]): result
        for result in validation.results
    }
    outcomes = tuple(
        _outcome(spec, by_position[position], suite.slice_by)
        for position, spec in enumerate(suite.expectations)
    )
    return SuiteReport(
        suite_name=suite.name,
        suite_version=suite.version,
        suite_sha256=suite.sha256,
        rows=len(frame),
        outcomes=outcomes,
        parameters={name: str(value) for name, value in (parameters or {}).items()},
    )


def _outcome(spec: ExpectationSpec, result: Any, slice_by: str | None) -> ExpectationOutcome:
    details: dict[str, Any] = dict(result.result or {})
    error = _exception_message(result.exception_info)
    index_entries = details.get("unexpected_index_list") or []
    failing_rows = tuple(
        entry if isinstance(entry, dict) else {"row": entry}
        for entry in index_entries[:FAILING_ROWS_SAMPLE]
    )
    slices: Counter[str] = Counter()
    if slice_by:
        for entry in index_entries:
            if isinstance(entry, dict) and slice_by in entry:
                slices[f"{slice_by}={entry[slice_by]}"] += 1
    observed = details.get("observed_value")
    mismatched = (details.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict) and any(mismatched.values()):
        # Column-set expectations: what is missing or unexpected says more than the whole set.
        observed = ", ".join(
            f"{kind}: {sorted(names)}" for kind, names in mismatched.items() if names
        )
    return ExpectationOutcome(
        expectation=spec.type,
        columns=spec.columns,
        severity=spec.severity,
        passed=bool(result.success),
        observed_value="" if observed is None else _short(observed),
        unexpected_count=int(details.get("unexpected_count") or 0),
        unexpected_percent=float(details.get("unexpected_percent") or 0.0),
        failing_rows=failing_rows,
        slices=dict(slices.most_common()),
        error=error,
        description=spec.description,
    )


def _exception_message(exception_info: Any) -> str:
    """GE nests exception details per metric; surface the first message, if any was raised."""
    if not exception_info:
        return ""
    candidates: Iterable[Any] = (
        [exception_info] if "raised_exception" in exception_info else exception_info.values()
    )
    for info in candidates:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "an exception was raised")
    return ""


@cache
def _batch_definition() -> Any:
    """One ephemeral GE context per process: creating one costs more than validating a day."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("aiops_frames")
    asset = source.add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


@cache
def _known_expectation_types() -> frozenset[str]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations.expectations as gx_expectations
    from great_expectations.expectations.expectation import Expectation

    types: set[str] = set()
    for name in dir(gx_expectations):
        candidate = getattr(gx_expectations, name)
        if isinstance(candidate, type) and issubclass(candidate, Expectation):
            expectation_type = getattr(candidate, "expectation_type", None)
            if isinstance(expectation_type, str):
                types.add(expectation_type)
    return frozenset(types)


# -- quarantine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineRecord:
    """Where a rejected artifact went and why; stored as JSON beside the artifact itself."""

    asset: str
    partition: str | None
    artifact: ArtifactRef
    report: dict[str, Any]
    source: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "artifact": self.artifact.to_dict()}


def quarantine_ref_name(asset: str, partition: str | None, artifact_sha256: str) -> str:
    return "/".join([QUARANTINE_PREFIX, *asset.split("/"), partition or "_", artifact_sha256[:16]])


def quarantine(store: ArtifactStore, record: QuarantineRecord) -> str:
    """Keep a rejected artifact and its report; returns the ref name under which it is filed."""
    record_ref = store.put_json(record.to_dict())
    name = quarantine_ref_name(record.asset, record.partition, record.artifact.sha256)
    store.set_ref(name, record_ref)
    return name


def list_quarantine(store: ArtifactStore, asset: str | None = None) -> list[QuarantineRecord]:
    """Every quarantined artifact (of one asset), oldest partition first."""
    refs_root = store.root / "refs" / QUARANTINE_PREFIX
    if asset:
        refs_root = refs_root.joinpath(*asset.split("/"))
    if not refs_root.exists():
        return []
    records: list[QuarantineRecord] = []
    for path in sorted(refs_root.rglob("*.json"), key=str):
        relative = path.relative_to(store.root / "refs").as_posix()[: -len(".json")]
        ref = store.get_ref(relative)
        if ref is None:
            continue
        data = store.get_json(ref)
        records.append(
            QuarantineRecord(
                asset=data["asset"],
                partition=data["partition"],
                artifact=ArtifactRef.from_dict(data["artifact"]),
                report=data["report"],
                source=data["source"],
                message=data["message"],
            )
        )
    return records


# -- formatting helpers ------------------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_slices(slices: Mapping[str, int]) -> str:
    return ", ".join(f"{name} ({count})" for name, count in slices.items())


def _format_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(
        ", ".join(f"{key}={_short(_jsonable(value), 32)}" for key, value in row.items())
        for row in rows
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _jsonable_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): _jsonable(value) for key, value in row.items()}
