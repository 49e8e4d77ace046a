"""The one way a configuration file (suite, policy, flags, plan) becomes a mapping.

Every such file is user-written YAML, so every reader needs the same three refusals, each in the
reader's own error type and naming the file: cannot read it, not YAML, not a mapping. Loading is
``yaml.safe_load`` only: a file never constructs Python objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def parse_yaml_mapping(
    text: str | bytes,
    *,
    what: str,
    error: type[Exception] = ValueError,
    expected: str = "a mapping",
) -> dict[str, Any]:
    """``text`` as a mapping, or ``error`` saying which ``what`` is not valid YAML or no mapping."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise error(f"{what} is not valid YAML: {problem}") from problem
    if not isinstance(document, dict):
        raise error(f"{what} must be {expected}")
    return document


def read_yaml_mapping(
    path: str | Path,
    *,
    what: str | None = None,
    error: type[Exception] = ValueError,
    expected: str = "a mapping",
) -> dict[str, Any]:
    """The YAML mapping in ``path``; an unreadable file is the same ``error`` as bad YAML."""
    source = Path(path)
    label = what or str(source)
    try:
        text = source.read_bytes()
    except OSError as problem:
        raise error(f"cannot read {label}: {problem}") from problem
    return parse_yaml_mapping(text, what=label, error=error, expected=expected)
