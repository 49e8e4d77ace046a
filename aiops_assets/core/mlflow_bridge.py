"""The MLflow bridge: our registry mirrored into an MLflow model registry, and a drift report.

Teams that look up models in MLflow (its UI, ``models:/name@champion``) should see the same
versions and the same champion as our ledger, without MLflow becoming a second source of truth.
So the ledger and its audit chain stay the truth and MLflow is a mirror: :func:`mirror` brings
MLflow in line with the ledger (never the other way), and :func:`drift_report` names every place
where they disagree (a missing version, an alias pointing elsewhere, a tag that differs), for
when someone changed MLflow by hand or a mirror after a move did not reach it.

What the mirror writes, per ledger version: one MLflow model version tagged with our version
number, artifact SHA-256, data versions (training and feature set), capsule, the audit sequence
of its registration, and the ledger's own tags (``aiops.tag.<name>``: the format, media type,
size); per alias the ledger holds (champion, challenger, shadow): the MLflow alias on the
matching version, and on the registered model the audit sequence of the alias's last move.
MLflow numbers its versions itself; ours are matched through the ``aiops.version`` tag, never
through MLflow's numbers. The mirror deletes nothing but our own tags and managed aliases the
ledger does not hold: an MLflow version the ledger does not know is reported, and left alone.

Before mirroring, the audit chain is verified: a ledger someone edited around the chain must not
be copied anywhere as if it were the truth.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aiops_assets.core.ledger import Ledger, ModelVersion

MLFLOW_EXTRA = "pip install 'aiops-assets[mlflow]'"
TRACKING_URI_ENV = "AIOPS_MLFLOW_TRACKING_URI"

PREFIX = "aiops."
VERSION_TAG = "aiops.version"
SHA256_TAG = "aiops.sha256"
TRAINING_SET_TAG = "aiops.training_set_version"
FEATURE_SET_TAG = "aiops.feature_set_version"
CAPSULE_TAG = "aiops.capsule"
AUDIT_SEQ_TAG = "aiops.audit_seq"
LEDGER_TAG_PREFIX = "aiops.tag."
LEDGER_URL_TAG = "aiops.ledger"
# The aliases the mirror owns in MLflow even when the ledger holds none of that name.
MANAGED_ALIASES = ("champion", "challenger", "shadow")
SOURCE_SCHEME = "aiops-store:/sha256/"
_HEALTH_TIMEOUT_SECONDS = 5.0

# Drift kinds, in the order a report lists them.
MISSING_MODEL = "missing model"
MODEL_TAG = "model tag differs"
MISSING_VERSION = "missing version"
DUPLICATE_VERSION = "duplicate version"
EXTRA_VERSION = "extra version"
VERSION_TAG_DIFFERS = "tag differs"
MISSING_ALIAS = "missing alias"
ALIAS_ELSEWHERE = "alias elsewhere"
EXTRA_ALIAS = "extra alias"
UNFIXABLE = (DUPLICATE_VERSION, EXTRA_VERSION)


class BridgeError(Exception):
    """MLflow cannot be reached or refused a request, or the ledger may not be mirrored."""


@dataclass(frozen=True)
class Drift:
    """One disagreement: what the ledger says, what MLflow says (None: absent)."""

    model_name: str
    kind: str
    subject: str
    ledger: str | None
    mlflow: str | None

    @property
    def fixable(self) -> bool:
        """Whether :func:`mirror` repairs it (it never deletes an MLflow version)."""
        return self.kind not in UNFIXABLE

    def line(self) -> str:
        return (
            f"{self.model_name} {self.subject}: {self.kind} "
            f"(ledger: {_shown(self.ledger)}, mlflow: {_shown(self.mlflow)})"
        )


@dataclass(frozen=True)
class MirrorReport:
    """What a mirror changed in MLflow and the disagreements left afterwards."""

    tracking_uri: str
    actions: list[str] = field(default_factory=list)
    remaining: list[Drift] = field(default_factory=list)
    error: str | None = None

    @property
    def in_sync(self) -> bool:
        return self.error is None and not self.remaining

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"in_sync": self.in_sync}


# --- what the ledger says MLflow should hold ----------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """The MLflow state one ledger model implies."""

    model_tags: dict[str, str]
    versions: dict[int, dict[str, str]]  # our version -> its tags
    sources: dict[int, str]
    descriptions: dict[int, str]
    aliases: dict[str, int]  # alias -> our version


def expected_state(ledger: Ledger, model_name: str) -> Expected:
    """Everything the ledger says about ``model_name``, as MLflow tags and aliases."""
    registered, moved = _audit_sequences(ledger, model_name)
    aliases = ledger.aliases(model_name)
    versions = ledger.list_versions(model_name)
    model_tags = {LEDGER_URL_TAG: ledger.url}
    for alias in sorted(aliases):
        model_tags[f"{PREFIX}alias.{alias}.audit_seq"] = str(moved.get(alias, 0))
    return Expected(
        model_tags=model_tags,
        versions={v.version: version_tags(v, registered.get(v.version, 0)) for v in versions},
        sources={v.version: f"{SOURCE_SCHEME}{v.sha256}" for v in versions},
        descriptions={v.version: _description(v) for v in versions},
        aliases=aliases,
    )


def version_tags(version: ModelVersion, audit_seq: int) -> dict[str, str]:
    tags = {
        VERSION_TAG: str(version.version),
        SHA256_TAG: version.sha256,
        TRAINING_SET_TAG: version.training_set_version,
        FEATURE_SET_TAG: version.feature_set_version,
        CAPSULE_TAG: version.capsule_ref or "",
        AUDIT_SEQ_TAG: str(audit_seq),
    }
    tags.update({f"{LEDGER_TAG_PREFIX}{key}": value for key, value in version.tags.items()})
    return tags


def _description(version: ModelVersion) -> str:
    return (
        f"Mirrored from the aiops ledger: {version.model_name} v{version.version}, "
        f"sha256 {version.sha256}. The ledger is the source of truth; do not edit here."
    )


def _audit_sequences(ledger: Ledger, model_name: str) -> tuple[dict[int, int], dict[str, int]]:
    """The seq of each version's registration and of each alias's latest move."""
    registered: dict[int, int] = {}
    moved: dict[str, int] = {}
    prefix = f"{model_name}:"
    for entry in ledger.audit_entries():
        if not entry.subject.startswith(prefix):
            continue
        rest = entry.subject[len(prefix) :]
        if entry.action == "register_version" and rest.startswith("v") and rest[1:].isdigit():
            registered.setdefault(int(rest[1:]), entry.seq)
        elif entry.action == "set_alias":
            moved[rest] = entry.seq
    return registered, moved


# --- what MLflow holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One MLflow registered model as the bridge reads it (None: it does not exist)."""

    tags: dict[str, str]
    versions: dict[str, dict[str, str]]  # MLflow version number -> its tags
    aliases: dict[str, str]  # alias -> MLflow version number

    def by_ours(self) -> dict[int, list[str]]:
        """Our version number -> the MLflow versions tagged with it, oldest first."""
        found: dict[int, list[str]] = {}
        for number in sorted(self.versions, key=int):
            ours = self.versions[number].get(VERSION_TAG, "")
            if ours.isdigit():
                found.setdefault(int(ours), []).append(number)
        return found


def compare(model_name: str, expected: Expected, snapshot: Snapshot | None) -> list[Drift]:
    """Every way ``snapshot`` differs from what the ledger implies; empty when in sync."""
    if snapshot is None:
        return [Drift(model_name, MISSING_MODEL, "(registered model)", model_name, None)]
    found = _model_tag_drift(model_name, expected, snapshot)
    mapping = snapshot.by_ours()
    for ours in sorted(expected.versions):
        numbers = mapping.get(ours, [])
        subject = f"v{ours}"
        if not numbers:
            found.append(Drift(model_name, MISSING_VERSION, subject, subject, None))
            continue
        for extra in numbers[1:]:
            found.append(Drift(model_name, DUPLICATE_VERSION, subject, subject, f"mlflow v{extra}"))
        found += _tag_drift(model_name, subject, expected.versions[ours], snapshot, numbers[0])
    for ours in sorted(set(mapping) - set(expected.versions)):
        for number in mapping[ours]:
            found.append(Drift(model_name, EXTRA_VERSION, f"v{ours}", None, f"mlflow v{number}"))
    found += _alias_drift(model_name, expected, snapshot, mapping)
    return found


def _model_tag_drift(model_name: str, expected: Expected, snapshot: Snapshot) -> list[Drift]:
    found = []
    for key, value in sorted(expected.model_tags.items()):
        if snapshot.tags.get(key) != value:
            found.append(Drift(model_name, MODEL_TAG, key, value, snapshot.tags.get(key)))
    for key in sorted(_ours(snapshot.tags) - set(expected.model_tags)):
        found.append(Drift(model_name, MODEL_TAG, key, None, snapshot.tags[key]))
    return found


def _tag_drift(
    model_name: str, subject: str, wanted: Mapping[str, str], snapshot: Snapshot, number: str
) -> list[Drift]:
    actual = snapshot.versions[number]
    found = []
    for key, value in sorted(wanted.items()):
        if actual.get(key) != value:
            found.append(
                Drift(model_name, VERSION_TAG_DIFFERS, f"{subject} {key}", value, actual.get(key))
            )
    for key in sorted(_ours(actual) - set(wanted)):
        found.append(Drift(model_name, VERSION_TAG_DIFFERS, f"{subject} {key}", None, actual[key]))
    return found


def _alias_drift(
    model_name: str, expected: Expected, snapshot: Snapshot, mapping: Mapping[int, list[str]]
) -> list[Drift]:
    found = []
    for alias, ours in sorted(expected.aliases.items()):
        subject, wanted = f"@{alias}", f"v{ours}"
        number = snapshot.aliases.get(alias)
        if number is None:
            found.append(Drift(model_name, MISSING_ALIAS, subject, wanted, None))
        elif number not in mapping.get(ours, [])[:1]:
            held = snapshot.versions.get(number, {}).get(VERSION_TAG)
            shown = f"mlflow v{number}" + (f" (ours v{held})" if held else "")
            found.append(Drift(model_name, ALIAS_ELSEWHERE, subject, wanted, shown))
    for alias in sorted(set(snapshot.aliases) - set(expected.aliases)):
        if alias in MANAGED_ALIASES:
            shown = f"mlflow v{snapshot.aliases[alias]}"
            found.append(Drift(model_name, EXTRA_ALIAS, f"@{alias}", None, shown))
    return found


def _ours(tags: Mapping[str, str]) -> set[str]:
    return {key for key in tags if key.startswith(PREFIX)}


def _shown(value: str | None) -> str:
    return "absent" if value is None else (value or '""')


# --- talking to MLflow ------------------------------------------------------------------------


def client_for(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for a server that answered its health check, or a one-line error.

    The check comes first because MLflow's client retries a refused connection for minutes.
    """
    if not tracking_uri:
        raise BridgeError(f"no MLflow tracking URI: pass one or set {TRACKING_URI_ENV}")
    try:
        from mlflow import MlflowClient
    except ModuleNotFoundError as error:
        raise BridgeError(f"the MLflow bridge needs mlflow-skinny: {MLFLOW_EXTRA}") from error
    if tracking_uri.startswith(("http://", "https://")):
        _require_healthy(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _require_healthy(tracking_uri: str) -> None:
    url = f"{tracking_uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=_HEALTH_TIMEOUT_SECONDS) as reply:
            healthy = int(reply.status) == 200
    except OSError as error:
        raise BridgeError(f"MLflow at {tracking_uri} is not reachable: {error}") from error
    if not healthy:
        raise BridgeError(f"MLflow at {tracking_uri} is not healthy ({url} did not answer 200)")


def read_snapshot(client: Any, name: str) -> Snapshot | None:
    from mlflow.exceptions import MlflowException

    if "'" in name:
        raise BridgeError(f"model name {name!r} cannot be searched in MLflow (it holds a quote)")
    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    versions: dict[str, dict[str, str]] = {}
    token = None
    while True:
        page = client.search_model_versions(f"name='{name}'", page_token=token)
        for version in page:
            versions[str(version.version)] = {str(k): str(v) for k, v in version.tags.items()}
        token = page.token
        if not token:
            break
    return Snapshot(
        tags={str(k): str(v) for k, v in model.tags.items()},
        versions=versions,
        aliases={str(k): str(v) for k, v in (model.aliases or {}).items()},
    )


def _models(ledger: Ledger, models: Sequence[str] | None) -> list[str]:
    return list(models) if models is not None else ledger.list_models()


def _require_intact(ledger: Ledger) -> None:
    verification = ledger.verify_audit()
    if not verification.ok:
        raise BridgeError(
            "the audit chain does not verify, so the ledger is not mirrored: "
            f"{verification.summary()}"
        )


def drift_report(
    ledger: Ledger,
    tracking_uri: str,
    *,
    models: Sequence[str] | None = None,
    prefix: str = "",
    client: Any = None,
) -> list[Drift]:
    """Every disagreement between the ledger and MLflow (``prefix`` + our model name there)."""
    from mlflow.exceptions import MlflowException

    client = client if client is not None else client_for(tracking_uri)
    found: list[Drift] = []
    try:
        for model in _models(ledger, models):
            expected = expected_state(ledger, model)
            found += compare(model, expected, read_snapshot(client, prefix + model))
    except MlflowException as error:
        raise BridgeError(f"MLflow at {tracking_uri}: {_first_line(error)}") from error
    return found


def mirror(
    ledger: Ledger,
    tracking_uri: str,
    *,
    models: Sequence[str] | None = None,
    prefix: str = "",
    verify: bool = True,
    client: Any = None,
) -> MirrorReport:
    """Bring MLflow in line with the ledger; running it again changes nothing.

    The ledger is read, never written. ``verify`` first checks the audit chain and refuses to
    mirror a ledger that does not verify.
    """
    from mlflow.exceptions import MlflowException

    if verify:
        _require_intact(ledger)
    client = client if client is not None else client_for(tracking_uri)
    actions: list[str] = []
    try:
        for model in _models(ledger, models):
            actions += _sync_model(client, prefix + model, expected_state(ledger, model))
    except MlflowException as error:
        raise BridgeError(f"MLflow at {tracking_uri}: {_first_line(error)}") from error
    remaining = drift_report(ledger, tracking_uri, models=models, prefix=prefix, client=client)
    return MirrorReport(tracking_uri=tracking_uri, actions=actions, remaining=remaining)


def _sync_model(client: Any, name: str, expected: Expected) -> list[str]:
    snapshot = read_snapshot(client, name)
    actions: list[str] = []
    if snapshot is None:
        client.create_registered_model(name, tags=expected.model_tags)
        actions.append(f"created registered model {name}")
        snapshot = Snapshot(tags=dict(expected.model_tags), versions={}, aliases={})
    actions += _sync_tags(
        snapshot.tags,
        expected.model_tags,
        set_tag=lambda key, value: client.set_registered_model_tag(name, key, value),
        delete_tag=lambda key: client.delete_registered_model_tag(name, key),
        where=name,
    )
    mapping = {ours: numbers[0] for ours, numbers in snapshot.by_ours().items()}
    for ours in sorted(expected.versions):
        wanted = expected.versions[ours]
        if ours not in mapping:
            created = client.create_model_version(
                name,
                expected.sources[ours],
                tags=wanted,
                description=expected.descriptions[ours],
                await_creation_for=0,
            )
            mapping[ours] = str(created.version)
            actions.append(f"created {name} mlflow v{created.version} for v{ours}")
            continue
        number = mapping[ours]
        actions += _sync_tags(
            snapshot.versions[number],
            wanted,
            set_tag=lambda key, value, n=number: client.set_model_version_tag(name, n, key, value),
            delete_tag=lambda key, n=number: client.delete_model_version_tag(name, n, key),
            where=f"{name} mlflow v{number}",
        )
    for alias, ours in sorted(expected.aliases.items()):
        if snapshot.aliases.get(alias) != mapping[ours]:
            client.set_registered_model_alias(name, alias, mapping[ours])
            actions.append(f"set {name}@{alias} to mlflow v{mapping[ours]} (v{ours})")
    for alias in sorted(set(snapshot.aliases) - set(expected.aliases)):
        if alias in MANAGED_ALIASES:
            client.delete_registered_model_alias(name, alias)
            actions.append(f"removed {name}@{alias}: the ledger holds no {alias}")
    return actions


def _sync_tags(
    actual: Mapping[str, str],
    wanted: Mapping[str, str],
    *,
    set_tag: Any,
    delete_tag: Any,
    where: str,
) -> list[str]:
    actions = []
    for key, value in sorted(wanted.items()):
        if actual.get(key) != value:
            set_tag(key, value)
            actions.append(f"set tag {key} on {where}")
    for key in sorted(_ours(actual) - set(wanted)):
        delete_tag(key)
        actions.append(f"removed tag {key} from {where}")
    return actions


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def mirror_after_move(
    ledger: Ledger,
    model_name: str,
    *,
    tracking_uri: str | None = None,
    prefix: str = "",
    environ: Mapping[str, str] | None = None,
) -> MirrorReport | None:
    """Mirror one model after its champion moved; for the champion asset or a sensor.

    ``tracking_uri`` defaults to ``AIOPS_MLFLOW_TRACKING_URI``; with neither, the bridge is off
    and this returns None. A failure never raises: the move already happened in the ledger (the
    truth), so an unreachable MLflow is the report's ``error``, and the next mirror catches up.
    """
    uri = tracking_uri or (os.environ if environ is None else environ).get(TRACKING_URI_ENV, "")
    if not uri:
        return None
    try:
        return mirror(ledger, uri, models=[model_name], prefix=prefix)
    except BridgeError as error:
        return MirrorReport(tracking_uri=uri, error=str(error))


def drift_json(drifts: Sequence[Drift]) -> str:
    return json.dumps([asdict(item) | {"fixable": item.fixable} for item in drifts], indent=2)
