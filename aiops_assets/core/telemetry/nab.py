"""The NAB source: Numenta Anomaly Benchmark files as telemetry, NAB's anomaly windows as labels.

Scoring a detector on NAB lives in :mod:`aiops_assets.core.nab`; this module only reads the corpus,
through the same CSV reader and frame contract as any other file, so a NAB file is held to the same
bad-input rules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from aiops_assets.core.telemetry.contract import (
    LABEL,
    TIMESTAMP,
    BoolArray,
    IntArray,
    RowDescriber,
    TelemetryFormatError,
    _typed_frame,
    naive_utc,
)
from aiops_assets.core.telemetry.files import (
    _combine,
    _LoadedFile,
    _raise_if_outside,
    _read_csv_cells,
)

__all__ = ["clock_repeats", "load_nab", "read_nab_windows"]


def load_nab(
    root: str | os.PathLike[str],
    *,
    files: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    drop_clock_repeats: bool = False,
) -> pd.DataFrame:
    """Load Numenta Anomaly Benchmark files as a telemetry frame with NAB's anomaly windows as labels.

    ``root`` holds ``data/<category>/<file>.csv`` (``timestamp,value``) and
    ``labels/combined_windows.json``. Each file becomes the service ``"<category>/<file>"`` with the
    single metric ``value``; ``label`` is 1 inside any of its windows, both ends inclusive as NAB
    defines them. ``files`` selects keys like ``"realKnownCause/nyc_taxi.csv"`` (default: every CSV
    under ``data/``). Rows are kept exactly as recorded: NAB's irregular steps and gaps are part of
    the benchmark, so nothing is resampled or filled.

    Four NAB files repeat clock times where a daylight-saving change was exported (a row at or
    before the previous row's time). By default such a file is refused like any other;
    ``drop_clock_repeats=True`` keeps each file's strictly increasing rows only (the rule of
    :func:`clock_repeats`, which names the dropped rows so a caller can report and account for them).

    Files are read only from inside ``data/`` (which may itself be a link): a file or category
    that is a link leading elsewhere, or a key with ``..``, is refused.

    Raises:
        TelemetryFormatError: as :func:`load_directory`, plus a missing or malformed labels file, a
            selected file that does not exist, a file resolving outside ``data/``, or a file
            without an entry in the windows file (an absent entry would otherwise silently read
            as "no anomalies").
    """
    if isinstance(files, str):
        raise TypeError("files must be a sequence of keys such as ['realKnownCause/nyc_taxi.csv']")
    nab_root = Path(root)
    data_dir = nab_root / "data"
    labels_path = nab_root / "labels" / "combined_windows.json"
    windows_by_key = _read_nab_windows(labels_path)
    if not data_dir.is_dir():
        raise TelemetryFormatError(f"{data_dir}: NAB data directory not found")
    keys = _selected_keys(data_dir, files)
    root = data_dir.resolve()
    loaded: list[_LoadedFile] = []
    for key in keys:
        csv_path = data_dir / key
        if csv_path.exists() or csv_path.is_symlink():
            # A linked file or category, or a key with "..", must not read from elsewhere.
            _raise_if_outside(csv_path, root, what="the NAB data folder")
        if not csv_path.is_file():
            raise TelemetryFormatError(f"{csv_path}: NAB data file {key!r} not found")
        if key not in windows_by_key:
            raise TelemetryFormatError(
                f"{labels_path}: no anomaly windows entry for {key!r} (use [] for a file without "
                "anomalies)"
            )
        loaded.append(
            _load_nab_file(
                csv_path, key, windows_by_key[key], drop_clock_repeats=drop_clock_repeats
            )
        )
    return _combine(loaded, source=str(data_dir), start=start, end=end)


def _selected_keys(data_dir: Path, files: Sequence[str] | None) -> list[str]:
    keys = (
        list(files)
        if files is not None
        else sorted(
            csv_file.relative_to(data_dir).as_posix() for csv_file in data_dir.glob("*/*.csv")
        )
    )
    if not keys:
        raise TelemetryFormatError(f"{data_dir}: no NAB CSV files to load")
    return keys


def _load_nab_file(
    csv_path: Path,
    key: str,
    windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]],
    *,
    drop_clock_repeats: bool,
) -> _LoadedFile:
    raw, describe_rows = _read_csv_cells(csv_path)
    unexpected = sorted(set(raw.columns) - {TIMESTAMP, "value"})
    if "value" not in raw.columns or unexpected:
        raise TelemetryFormatError(
            f"{csv_path}: expected NAB columns 'timestamp,value', got {list(raw.columns)!r}"
        )
    typed = _typed_frame(
        raw,
        source=str(csv_path),
        describe_rows=describe_rows,
        default_service=key.removesuffix(".csv"),
    )
    if drop_clock_repeats:
        kept = np.flatnonzero(~clock_repeats(typed[TIMESTAMP]))
        typed = typed.iloc[kept].reset_index(drop=True)
        describe_rows = _describe_subset(describe_rows, kept)
    typed[LABEL] = _inside_windows(typed[TIMESTAMP], windows).astype(np.int8)
    return _LoadedFile(csv_path, typed, describe_rows)


def _inside_windows(
    timestamps: pd.Series, windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]]
) -> BoolArray:
    inside_window = np.zeros(len(timestamps), dtype=bool)
    for window_start, window_end in windows:
        inside_window |= ((timestamps >= window_start) & (timestamps <= window_end)).to_numpy()
    return inside_window


def clock_repeats(timestamps: pd.Series) -> BoolArray:
    """True for each row whose time is not later than every row before it in the file."""
    times = pd.DatetimeIndex(timestamps).asi8
    if len(times) == 0:
        return np.zeros(0, dtype=bool)
    running_max = np.maximum.accumulate(times)
    repeated = np.zeros(len(times), dtype=bool)
    repeated[1:] = times[1:] <= running_max[:-1]
    return repeated


def _describe_subset(describe_rows: RowDescriber, kept: IntArray) -> RowDescriber:
    def describe(positions: IntArray) -> list[str]:
        return describe_rows(kept[np.asarray(positions, dtype=np.int64)])

    return describe


def read_nab_windows(
    root: str | os.PathLike[str],
) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """NAB's anomaly windows per file key, as :func:`load_nab` labels rows with them (both ends in).

    Public so that a NAB scorer places windows exactly where the loader's labels are.
    """
    return _read_nab_windows(Path(root) / "labels" / "combined_windows.json")


def _read_nab_windows(labels_path: Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    try:
        document = json.loads(labels_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise TelemetryFormatError(f"{labels_path}: NAB labels file not found") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TelemetryFormatError(f"{labels_path}: cannot read NAB labels: {error}") from error
    if not isinstance(document, dict):
        raise TelemetryFormatError(
            f"{labels_path}: expected an object mapping file keys to windows"
        )
    windows_by_key: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for key, windows in document.items():
        parsed_windows = []
        for window in windows if isinstance(windows, list) else [windows]:
            try:
                window_start, window_end = (naive_utc(pd.Timestamp(bound)) for bound in window)
            except (TypeError, ValueError) as error:
                raise TelemetryFormatError(
                    f"{labels_path}: entry {key!r}: window {window!r} is not a [start, end] pair "
                    f"of timestamps ({error})"
                ) from error
            if window_start > window_end:
                raise TelemetryFormatError(
                    f"{labels_path}: entry {key!r}: window {window!r} ends before it starts"
                )
            parsed_windows.append((window_start, window_end))
        windows_by_key[key] = parsed_windows
    return windows_by_key
