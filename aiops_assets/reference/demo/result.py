"""What a demo produced, as JSON that two runs compare equal on, and as a summary for a person."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiops_assets import LedgerResource
from aiops_assets.core.alerts import OutboxSink
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.reference.settings import PipelineSettings


@dataclass
class DemoResult:
    """What the demo produced: data versions per asset (partition), the champion and its metrics."""

    data_versions: dict[str, str] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_sha256: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    decision: str = ""
    reason: str = ""
    registry: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    dagster_home: str = ""
    store_root: str = ""
    seconds: float = 0.0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "assets": dict(sorted(self.data_versions.items())),
            "checks": dict(sorted(self.checks.items())),
            "model_sha256": self.model_sha256,
            "metrics": self.metrics,
            "registry": self.registry,
            "alerts": self.alerts,
            "audit": self.audit,
        }


def record_registry(result: DemoResult, settings: PipelineSettings) -> None:
    """What the loop did, without run ids or times, so two demos compare equal."""
    ledger = LedgerResource(url=settings.ledger_url, key_file=str(settings.audit_key_file))
    registry = ledger.get_ledger()
    result.registry = {
        "versions": _versions(registry),
        "champion": _version_label(registry.get_alias(MODEL_NAME, CHAMPION)),
        "promotions": _promotions(registry),
        "alias_history": _alias_history(registry),
        "feature_sets": {
            record.version_id: record.status for record in registry.list_feature_sets()
        },
        "rollouts": _rollouts(registry),
    }
    verification = registry.verify_audit()
    result.audit = {"ok": verification.ok, "entries": verification.entries}
    # The outbox, or with a webhook its journal: every alert that was delivered.
    result.alerts = [
        {
            "kind": alert.kind,
            "severity": alert.severity,
            "asset": alert.asset,
            "check": alert.check,
            "partition": alert.partition,
            "summary": alert.summary,
        }
        for alert in OutboxSink(settings.alert_outbox).read()
    ]


def _versions(registry: Any) -> dict[str, Any]:
    return {
        f"v{version.version}": {
            "sha256": version.sha256,
            "pr_auc": round(version.metrics.get("pr_auc", 0.0), 6),
            "trained_until": version.tags.get("trained_until", ""),
        }
        for version in registry.list_versions(MODEL_NAME)
    }


def _promotions(registry: Any) -> list[dict[str, Any]]:
    return [
        {
            "candidate": f"v{record.candidate_version}",
            "champion": f"v{record.champion_version}" if record.champion_version else None,
            "promoted": record.promoted,
            "reason": record.reason,
        }
        for record in registry.promotions(MODEL_NAME)
    ]


def _alias_history(registry: Any) -> list[dict[str, Any]]:
    return [
        {
            "alias": change.alias,
            "from": f"v{change.from_version}" if change.from_version else None,
            "to": f"v{change.to_version}",
            "kind": change.kind,
            "actor": change.actor,
        }
        for change in registry.alias_history(MODEL_NAME)
    ]


def _rollouts(registry: Any) -> list[dict[str, Any]]:
    return [
        {
            "version": f"v{rollout.to_version}",
            "from": f"v{rollout.from_version}" if rollout.from_version else None,
            "status": rollout.status,
            "stages": [
                {"name": stage.name, "services": list(stage.services), "status": stage.status}
                for stage in rollout.stages
            ],
        }
        for rollout in registry.rollouts(MODEL_NAME)
    ]


def _version_label(version: Any) -> str | None:
    return None if version is None else f"v{version.version}"


def format_summary(result: DemoResult) -> str:
    latest = _latest_per_asset(result.data_versions)
    width = max(len(name) for name in latest) if latest else 10
    lines = [
        f"Materialized {len(result.data_versions)} asset partitions in {result.seconds:.1f}s.",
        "",
        "Latest data versions (SHA-256 of each artifact's bytes):",
        *(f"  {name:<{width}}  {version[:16]}" for name, version in latest.items()),
        "",
        _checks_line(result.checks),
        f"Champion model {result.model_sha256[:16]} ({result.decision}: {result.reason})",
        "  holdout " + ", ".join(f"{key}={value:.3f}" for key, value in result.metrics.items()),
        "",
        *_loop_lines(result),
        "",
        f"Dagster instance: {result.dagster_home}",
        f"Artifact store:   {result.store_root}",
        "Explore it: run `make dev`, open http://127.0.0.1:3000, then Assets > Lineage (group aiops):",
        "each asset shows its data version, code version and metadata; click a partition to see its",
        "row count, schema and SHA-256.",
    ]
    return "\n".join(lines)


def _loop_lines(result: DemoResult) -> list[str]:
    """The closed loop in a few lines: alias changes, gate decisions, alerts, the audit chain."""
    registry = result.registry
    versions = len(registry.get("versions", {}))
    return [
        f"Registry: {versions} model versions; champion {registry.get('champion')}",
        *_registry_lines(registry),
        _alerts_line(result.alerts),
        _audit_line(result.audit),
    ]


def _registry_lines(registry: Mapping[str, Any]) -> list[str]:
    lines = [
        f"  {change['kind']:<8} {change['from'] or '-'} -> {change['to']} by {change['actor']}"
        for change in registry.get("alias_history", [])
        if change["alias"] == CHAMPION
    ]
    lines += [
        f"  feature set {version_id}: {status}"
        for version_id, status in registry.get("feature_sets", {}).items()
    ]
    for rollout in registry.get("rollouts", []):
        stages = ", ".join(
            f"{stage['name']} ({', '.join(stage['services']) or '-'}) {stage['status']}"
            for stage in rollout["stages"]
        )
        lines.append(
            f"  rollout  {rollout['from'] or '-'} -> {rollout['version']} {rollout['status']}: "
            f"{stages}"
        )
    lines += [
        f"  gate refused {item['candidate']}: {item['reason']}"
        for item in registry.get("promotions", [])
        if not item["promoted"]
    ]
    return lines


def _alerts_line(alerts: list[dict[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for alert in alerts:
        kinds[alert["kind"]] = kinds.get(alert["kind"], 0) + 1
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    return "Alerts: " + (counts or "none")


def _audit_line(audit: Mapping[str, Any]) -> str:
    return (
        f"Audit log: {audit.get('entries', 0)} entries, chain "
        + ("verified" if audit.get("ok") else "BROKEN")
        + " (`aiops audit verify`)"
    )


def _checks_line(checks: Mapping[str, Mapping[str, Any]]) -> str:
    failed = [label for label, outcome in checks.items() if not outcome["passed"]]
    line = f"Checks: {len(checks) - len(failed)} passed, {len(failed)} failed"
    return line + (f": {', '.join(failed)}" if failed else "")


def _latest_per_asset(data_versions: dict[str, str]) -> dict[str, str]:
    latest: dict[str, str] = {}
    for label in sorted(data_versions):
        latest[label.split("[", 1)[0] + ("[latest]" if "[" in label else "")] = data_versions[label]
    return latest
