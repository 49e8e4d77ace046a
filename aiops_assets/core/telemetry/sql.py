"""The SQL source: a table or a query behind any SQLAlchemy URL, read one window at a time.

The mapping (:mod:`~aiops_assets.core.telemetry.mapping`) names the time, service, metric and
label columns and either a ``table`` (``schema.table`` allowed, quoted by SQLAlchemy) or a
``query`` (wrapped as a subquery, so the window filter is the database's work, not ours). Only
the mapped columns are selected, renamed to their contract names, and the rows go through the
contract's canonicalization like every other source's: a bad value fails naming column and row.

Time is UTC throughout: naive timestamp columns are read as UTC, ``timestamptz`` ones are
converted, and on PostgreSQL the session time zone is set to UTC so the window bounds mean the
same instant whatever the server's default is.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from aiops_assets.core.telemetry.contract import (
    LABEL,
    SERVICE,
    TIMESTAMP,
    canonical_telemetry,
    naive_utc,
)
from aiops_assets.core.telemetry.mapping import SourceMapping, TelemetrySourceError

__all__ = ["load_sql", "window_statement"]


def load_sql(
    url: str | sa.URL, mapping: SourceMapping, *, start: datetime, end: datetime
) -> pd.DataFrame:
    """The canonical telemetry frame of ``[start, end)`` from the mapped table or query.

    Raises :class:`TelemetrySourceError` (one line, password hidden) when the database cannot be
    reached or refuses the statement (a missing table or column is named by the database), and
    ``TelemetryFormatError`` when rows break the contract. An empty window is an empty frame.
    """
    where = _describe(url)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as error:
        raise TelemetrySourceError(f"{where}: not a usable SQLAlchemy URL ({error})") from None
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql("SET TIME ZONE 'UTC'")
            result = connection.execute(window_statement(mapping, start=start, end=end))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    except sa.exc.DBAPIError as error:
        raise TelemetrySourceError(f"{where}: {_first_line(error)}") from None
    finally:
        engine.dispose()
    return canonical_telemetry(_typed(frame, mapping))


def window_statement(mapping: SourceMapping, *, start: datetime, end: datetime) -> sa.Select[Any]:
    """``SELECT`` of the mapped columns, renamed to contract names, for ``start <= t < end``."""
    names = _contract_to_source(mapping)
    source = _source_selectable(mapping, list(names.values()))
    time = source.c[mapping.timestamp]
    return (
        sa.select(*(source.c[column].label(contract) for contract, column in names.items()))
        .where(time >= _bound(start), time < _bound(end))
        .order_by(time, source.c[mapping.service])
    )


def _contract_to_source(mapping: SourceMapping) -> dict[str, str]:
    names = {TIMESTAMP: mapping.timestamp, SERVICE: mapping.service, **mapping.metrics}
    if mapping.label:
        names[LABEL] = mapping.label
    return names


def _source_selectable(mapping: SourceMapping, columns: list[str]) -> Any:
    if mapping.query:
        text = sa.text(mapping.query.rstrip().rstrip(";"))
        return text.columns(*(sa.column(name) for name in columns)).subquery("aiops_source")
    schema, _, table = mapping.table.rpartition(".")
    return sa.table(table, *(sa.column(name) for name in columns), schema=schema or None)


def _bound(moment: datetime) -> datetime:
    """A window bound as naive UTC, the contract's clock (the session runs in UTC)."""
    return naive_utc(moment).to_pydatetime()


def _typed(frame: pd.DataFrame, mapping: SourceMapping) -> pd.DataFrame:
    """Database values the contract reads as they are: ``Decimal`` to float, ``bool`` to 0/1."""
    typed = frame.copy()
    for column in mapping.metrics:
        if column in typed and typed[column].dtype == object:
            # Only Decimals change: anything else stays for the contract to accept or refuse.
            typed[column] = typed[column].map(_plain_number)
    if LABEL in typed and typed[LABEL].dtype == bool:
        typed[LABEL] = typed[LABEL].astype("int8")
    return typed


def _plain_number(value: object) -> object:
    return float(value) if isinstance(value, Decimal) else value


def _describe(url: str | sa.URL) -> str:
    try:
        return f"database {sa.make_url(url).render_as_string(hide_password=True)}"
    except sa.exc.ArgumentError:
        return "database (unparseable URL)"


def _first_line(error: sa.exc.DBAPIError) -> str:
    text = str(error.orig) if error.orig is not None else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
