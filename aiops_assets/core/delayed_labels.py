"""Labels that arrive on their own schedule: incident windows per service, and their maturity.

An SRE team's labels are rarely a column of the telemetry: they are incident records (a service,
when it started, when it ended) written up days after the fact. This module reads such windows
from a CSV file or a SQL table, joins them to scored rows (a row is anomalous when its service had
an incident covering its timestamp) and says when a partition's labels are *mature*: its window
ended at least the configured delay ago, so the write-ups had time to land.

Plain Python: no orchestrator import.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WINDOW_COLUMNS = ("service", "start", "end")


def labels_mature(partition_end: datetime, delay: timedelta, now: datetime) -> bool:
    """Whether the labels of a partition ending at ``partition_end`` may be judged at ``now``."""
    if delay < timedelta(0):
        raise ValueError(f"the label delay must not be negative, got {delay}")
    return partition_end + delay <= now


def incident_windows(frame: pd.DataFrame, *, origin: str = "the label source") -> pd.DataFrame:
    """``frame`` checked and normalized: columns service (str), start and end (UTC timestamps).

    Every malformed row is refused with its row numbers: a label source that silently dropped
    an incident would make a bad day look good.
    """
    missing = [column for column in WINDOW_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{origin} lacks the column(s) {missing}; incident windows need {list(WINDOW_COLUMNS)}"
        )
    windows = pd.DataFrame({"service": frame["service"].astype(str)})
    for column in ("start", "end"):
        parsed = pd.to_datetime(frame[column], errors="coerce", utc=True)
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            raise ValueError(
                f"{origin}: column {column!r} is not a timestamp in row(s) {bad[:5].tolist()}"
            )
        windows[column] = parsed.to_numpy()
    backwards = np.flatnonzero((windows["end"] <= windows["start"]).to_numpy())
    if backwards.size:
        raise ValueError(
            f"{origin}: an incident must end after it starts; row(s) {backwards[:5].tolist()} "
            "do not"
        )
    return windows.reset_index(drop=True)


def read_incident_csv(path: str | Path) -> pd.DataFrame:
    """Incident windows from a CSV file with service, start and end columns."""
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"label source {source} does not exist (AIOPS_LABEL_SOURCE)")
    return incident_windows(pd.read_csv(source), origin=str(source))


def read_incident_table(url: str, table: str) -> pd.DataFrame:
    """Incident windows from a SQL table (any SQLAlchemy URL) with service, start, end columns."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            selected: Any = sa.select(*(sa.column(name) for name in WINDOW_COLUMNS)).select_from(
                sa.table(table)
            )
            frame = pd.read_sql(selected, connection)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        reason = str(error).splitlines()[0]
        raise ValueError(f"cannot read incident windows from table {table!r}: {reason}") from error
    finally:
        engine.dispose()
    return incident_windows(frame, origin=f"table {table!r}")


def join_incident_labels(
    timestamps: pd.Series | np.ndarray,
    services: pd.Series | np.ndarray,
    windows: pd.DataFrame,
) -> np.ndarray:
    """0/1 per row: 1 when the row's service had an incident window with start <= t < end.

    Windows are half-open like the partitions, so an incident ending exactly at midnight does
    not label the next day's first row. Vectorized per service: rows are sorted once and each
    window becomes a +1/-1 pair on the sorted timestamps.
    """
    stamps = pd.to_datetime(pd.Series(np.asarray(timestamps)), utc=True).to_numpy("datetime64[ns]")
    names = np.asarray(services).astype(str)
    labels = np.zeros(stamps.shape[0], dtype="int8")
    if len(windows) == 0:
        return labels
    for service, own in incident_windows(windows).groupby("service", sort=False):
        rows = np.flatnonzero(names == str(service))
        if rows.size == 0:
            continue
        order = np.argsort(stamps[rows], kind="mergesort")
        sorted_stamps = stamps[rows][order]
        starts = pd.to_datetime(own["start"], utc=True).to_numpy("datetime64[ns]")
        ends = pd.to_datetime(own["end"], utc=True).to_numpy("datetime64[ns]")
        delta = np.zeros(rows.size + 1, dtype="int64")
        np.add.at(delta, np.searchsorted(sorted_stamps, starts, side="left"), 1)
        np.add.at(delta, np.searchsorted(sorted_stamps, ends, side="left"), -1)
        covered = np.cumsum(delta[:-1]) > 0
        labels[rows[order]] = covered.astype("int8")
    return labels
