"""Feature flags: which feature-set version and which model version serve each service.

A new feature set or model should reach a few services first and all of them later, and be
switched off at once when it hurts, without a deploy. Flags are one small YAML document, every
version of which is kept in the ledger (``Ledger.record_flags``) with an audit entry, so an
incident report can show that "10 % of services moved to feature set v2" an hour before the drop.

Selection is deterministic: a service is in a percentage rollout when its bucket, a hash of the
flag name and the service name, is below the percentage. The same service always lands in the
same bucket, raising the percentage only ever adds services, and two flags split services
independently.

Document shape::

    version: 1
    flags:
      features:                      # a flag's name
        kind: feature_set            # feature_set | model
        target: telemetry_core       # the feature-set name or the model name it selects for
        default: telemetry_core-v1-fdd75cad41fa
        rules:                       # first match wins
          - value: telemetry_core-v5-51958ddb4a99
            services: [checkout]     # by list
          - value: telemetry_core-v5-51958ddb4a99
            percent: 25              # by share of services
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiops_assets.core.yaml_mapping import parse_yaml_mapping

if TYPE_CHECKING:
    from aiops_assets.core.environments import Environment
    from aiops_assets.core.ledger import FlagVersion, Ledger

FLAG_KINDS = ("feature_set", "model")
SCHEMA_VERSION = 1
DEFAULT_FLAGS_PATH = Path(__file__).with_name("flags.yaml")
FLAGS_ENV = "AIOPS_FLAGS"
# Buckets are hundredths of a percent, so 0.5 % is expressible and the hash spreads evenly.
_BUCKETS = 10_000


class FlagError(ValueError):
    """A flag document that does not parse or validate; the message names the flag and field."""


@dataclass(frozen=True)
class Rule:
    value: str
    services: tuple[str, ...] = ()
    percent: float | None = None

    def matches(self, flag_name: str, service: str) -> bool:
        if service in self.services:
            return True
        return self.percent is not None and bucket(flag_name, service) < self.percent


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str
    target: str
    default: str
    rules: tuple[Rule, ...] = ()

    def value_for(self, service: str) -> str:
        for rule in self.rules:
            if rule.matches(self.name, service):
                return rule.value
        return self.default

    def values(self) -> set[str]:
        """Every value this flag can select, for checks that must hold whatever the service."""
        return {self.default, *(rule.value for rule in self.rules)}

    def describe(self) -> str:
        parts = [f"default {self.default}"]
        for rule in self.rules:
            who = []
            if rule.services:
                who.append(", ".join(rule.services))
            if rule.percent is not None:
                who.append(f"{rule.percent:g}% of services")
            parts.append(f"{rule.value} for {' + '.join(who)}")
        return f"{self.name} ({self.kind} {self.target}): " + "; ".join(parts)


def bucket(flag_name: str, service: str) -> float:
    """The service's place in [0, 100) for this flag: stable across processes and machines."""
    digest = hashlib.sha256(f"{flag_name}\0{service}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % _BUCKETS) / (_BUCKETS / 100)


@dataclass(frozen=True)
class FlagSet:
    """A parsed flag document; ``text`` is kept verbatim because that is what gets versioned."""

    flags: Mapping[str, Flag]
    text: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> FlagSet:
        document = parse_yaml_mapping(
            text,
            what=f"flags {source}",
            error=FlagError,
            expected="a mapping with `version` and `flags`",
        )
        if document.get("version") != SCHEMA_VERSION:
            raise FlagError(
                f"flags {source}: `version` must be {SCHEMA_VERSION}, got "
                f"{document.get('version')!r}"
            )
        raw = document.get("flags") or {}
        if not isinstance(raw, dict):
            raise FlagError(f"flags {source}: `flags` must map flag names to flags")
        flags = {str(name): _parse_flag(str(name), body, source) for name, body in raw.items()}
        targets: dict[tuple[str, str], str] = {}
        for flag in flags.values():
            other = targets.setdefault((flag.kind, flag.target), flag.name)
            if other != flag.name:
                raise FlagError(
                    f"flags {source}: {other!r} and {flag.name!r} both select the {flag.kind} "
                    f"of {flag.target!r}; one flag per target keeps the answer unambiguous"
                )
        return cls(flags=flags, text=text, source=source)

    @classmethod
    def load(cls, path: str | Path) -> FlagSet:
        flag_path = Path(path)
        try:
            text = flag_path.read_text(encoding="utf-8")
        except OSError as error:
            raise FlagError(f"cannot read flags {flag_path}: {error}") from error
        return cls.parse(text, source=str(flag_path))

    def flag_for(self, kind: str, target: str) -> Flag | None:
        return next(
            (flag for flag in self.flags.values() if flag.kind == kind and flag.target == target),
            None,
        )

    def resolve(self, kind: str, target: str, service: str, *, fallback: str | None = None) -> str:
        """The value selected for ``service``; ``fallback`` when no flag selects this target."""
        flag = self.flag_for(kind, target)
        if flag is not None:
            return flag.value_for(service)
        if fallback is None:
            raise FlagError(f"no flag selects the {kind} of {target!r} (flags {self.source})")
        return fallback

    def assignments(self, kind: str, target: str, services: Iterable[str]) -> dict[str, str]:
        return {service: self.resolve(kind, target, service) for service in sorted(services)}


def _parse_flag(name: str, body: Any, source: str) -> Flag:
    where = f"flags {source}: flag {name!r}"
    if not isinstance(body, dict):
        raise FlagError(f"{where} must be a mapping with kind, target and default")
    kind = str(body.get("kind", ""))
    if kind not in FLAG_KINDS:
        raise FlagError(f"{where}: `kind` must be one of {', '.join(FLAG_KINDS)}, got {kind!r}")
    for key in ("target", "default"):
        if body.get(key) in (None, ""):
            raise FlagError(f"{where}: `{key}` is required")
    rules = []
    for position, rule in enumerate(body.get("rules") or [], start=1):
        rules.append(_parse_rule(rule, f"{where} rule #{position}"))
    return Flag(
        name=name,
        kind=kind,
        target=str(body["target"]),
        default=str(body["default"]),
        rules=tuple(rules),
    )


def _parse_rule(rule: Any, where: str) -> Rule:
    if not isinstance(rule, dict) or rule.get("value") in (None, ""):
        raise FlagError(f"{where} needs a `value`")
    services = rule.get("services") or []
    if not isinstance(services, list) or not all(isinstance(s, str) and s for s in services):
        raise FlagError(f"{where}: `services` must be a list of service names")
    percent = rule.get("percent")
    if percent is not None:
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise FlagError(f"{where}: `percent` must be a number, got {percent!r}")
        if not 0 <= float(percent) <= 100:
            raise FlagError(f"{where}: `percent` must be between 0 and 100, got {percent}")
    if not services and percent is None:
        raise FlagError(f"{where} selects no service: give `services`, `percent` or both")
    return Rule(
        value=str(rule["value"]),
        services=tuple(services),
        percent=None if percent is None else float(percent),
    )


def diff_flags(before: FlagSet | None, after: FlagSet) -> list[str]:
    """One line per flag that appeared, went away or changed, for the change log and the CLI."""
    old = dict(before.flags) if before is not None else {}
    lines = []
    for name in sorted(set(old) | set(after.flags)):
        if name not in after.flags:
            lines.append(f"removed {old[name].describe()}")
        elif name not in old:
            lines.append(f"added {after.flags[name].describe()}")
        elif old[name] != after.flags[name]:
            lines.append(f"{old[name].describe()} -> {after.flags[name].describe()}")
    return lines


def changed_services(
    before: FlagSet | None, after: FlagSet, services: Sequence[str]
) -> dict[str, dict[str, tuple[str | None, str]]]:
    """Per flag, the services whose selected value changes: what a flag change actually moves."""
    moved: dict[str, dict[str, tuple[str | None, str]]] = {}
    for name, flag in after.flags.items():
        previous = before.flags.get(name) if before is not None else None
        for service in services:
            old = previous.value_for(service) if previous is not None else None
            new = flag.value_for(service)
            if old != new:
                moved.setdefault(name, {})[service] = (old, new)
    return moved


def current_flags(ledger: Ledger, *, default_path: str | Path | None = None) -> FlagSet:
    """The flags in force: the latest version in the ledger, else the packaged default file."""
    latest = ledger.latest_flags()
    if latest is not None:
        return FlagSet.parse(latest.body, source=f"ledger flags v{latest.version}")
    return FlagSet.load(default_path or DEFAULT_FLAGS_PATH)


def flags_as_of(ledger: Ledger, version: int, *, default_path: str | Path | None = None) -> FlagSet:
    """Flag version ``version`` as it was (0: the default file, in force before any version)."""
    for recorded in ledger.flag_versions():
        if recorded.version == version:
            return FlagSet.parse(recorded.body, source=f"ledger flags v{recorded.version}")
    if version == 0:
        return FlagSet.load(default_path or DEFAULT_FLAGS_PATH)
    raise FlagError(f"flag version v{version} is not in the ledger")


def flag_history(ledger: Ledger) -> list[tuple[FlagVersion, FlagSet]]:
    """Every version in force, oldest first, parsed (each was validated when it was applied)."""
    return [
        (version, FlagSet.parse(version.body, source=f"ledger flags v{version.version}"))
        for version in ledger.flag_versions()
    ]


def pinned_version(value: str) -> int | None:
    """The version a ``model`` flag value pins (``v7`` or ``7``); None for an alias."""
    text = value[1:] if value.startswith("v") else value
    return int(text) if text.isdigit() else None


def check_flags_allowed(flags: FlagSet, ledger: Ledger, environment: Environment) -> None:
    """Refuse flags that would serve, to any service, what this environment does not allow.

    Checked on every value a flag can select, not only on the services seen today: a service
    added tomorrow falls into some bucket too.
    """
    for flag in flags.flags.values():
        for value in sorted(flag.values()):
            if flag.kind == "feature_set":
                record = ledger.get_feature_set(value)
                if record is None:
                    raise FlagError(
                        f"flag {flag.name!r} selects feature set {value}, which is not "
                        "registered in the ledger"
                    )
                environment.require_feature_set(record)
            else:
                number = pinned_version(value)
                if number is None:
                    continue  # an alias (champion): resolved, and checked, where it is served
                version = ledger.get_version(flag.target, number)
                if version is None:
                    raise FlagError(
                        f"flag {flag.name!r} selects {flag.target} v{number}, which is not "
                        "registered in the ledger"
                    )
                environment.require_model(version)


def apply_flags(
    ledger: Ledger,
    text: str,
    *,
    actor: str,
    reason: str,
    environment: Environment,
    source: str = "<string>",
) -> tuple[FlagVersion, list[str]]:
    """Validate, check against the environment, and record a new flag document.

    Returns the version now in force and the lines that changed (empty when the text is the
    version already in force, which records nothing).
    """
    if not reason.strip():
        raise FlagError("a flag change needs a reason: it is what an incident report will show")
    flags = FlagSet.parse(text, source=source)
    check_flags_allowed(flags, ledger, environment)
    latest = ledger.latest_flags()
    # Before the first recorded version the packaged default is in force: diff against that.
    before = current_flags(ledger)
    version = ledger.record_flags(text, actor=actor, reason=reason)
    if latest is not None and latest.version == version.version:
        return version, []
    return version, diff_flags(before, flags)


__all__ = [
    "DEFAULT_FLAGS_PATH",
    "FLAG_KINDS",
    "Flag",
    "FlagError",
    "FlagSet",
    "Rule",
    "apply_flags",
    "bucket",
    "changed_services",
    "check_flags_allowed",
    "current_flags",
    "diff_flags",
    "flag_history",
    "pinned_version",
]
