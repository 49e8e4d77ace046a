"""The telemetry source kinds, in a module of their own so settings can name them without pandas."""

from typing import Literal, get_args

SourceKind = Literal["scenario", "directory", "nab", "prometheus", "sql"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)
