"""The access policy: parsing, role resolution, the acting identity, and audited refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.policy import (
    ACTIONS,
    ACTOR_ENV,
    ACTOR_TAG,
    POLICY_ENV,
    AccessDenied,
    AccessPolicy,
    PolicyError,
    acting_identity,
    authorize,
)

STRICT = """
roles:
  admin: [promote, rollback, export, change_threshold]
  oncall: [rollback]
  viewer: []
members:
  - {identity: "alice@example.com", role: admin}
  - {identity: "oncall-*", role: oncall}
  - {identity: "*", role: viewer}
"""


def test_the_packaged_default_lets_sensors_automate_and_local_users_administer() -> None:
    policy = AccessPolicy.load(environ={})
    assert policy.allows("sensor:rollback_on_regression", "rollback")
    assert policy.allows("sensor:retrain_on_drift", "promote")
    assert not policy.allows("sensor:retrain_on_drift", "export")
    assert all(policy.allows("local:ana", action) for action in ACTIONS)
    assert not policy.allows("someone@example.com", "rollback")


def test_the_first_matching_member_decides_the_role() -> None:
    policy = AccessPolicy.parse(STRICT)
    assert policy.role_of("alice@example.com") == "admin"
    assert policy.role_of("oncall-bob") == "oncall"
    assert policy.role_of("local:alice") == "viewer"
    assert policy.allows("oncall-bob", "rollback")
    assert not policy.allows("oncall-bob", "promote")


def test_a_policy_without_a_catch_all_gives_strangers_no_role() -> None:
    policy = AccessPolicy.parse("roles: {admin: [promote]}\nmembers: [{identity: a, role: admin}]")
    assert policy.role_of("b") is None
    with pytest.raises(AccessDenied, match=r"b \(no role\) may not promote m:champion"):
        policy.require("b", "promote", "m:champion")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles: {admin: [deploy]}", "unknown action"),
        ("roles: {admin: [promote]}\nmembers: [{identity: a, role: root}]", "undefined role"),
        ("roles: {admin: [promote]}\nmembers: [{identity: a}]", "needs `identity` and `role`"),
        ("members: []", "`roles` must map"),
        ("roles: [", "not valid YAML"),
    ],
)
def test_a_malformed_policy_is_refused_with_the_problem_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        AccessPolicy.parse(text, source="policy.yaml")


def test_the_policy_path_comes_from_the_argument_then_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(STRICT)
    assert AccessPolicy.load(environ={POLICY_ENV: str(path)}).source == str(path)
    assert AccessPolicy.load(path, environ={POLICY_ENV: "/nowhere.yaml"}).source == str(path)
    with pytest.raises(PolicyError, match=r"cannot read the access policy /nowhere\.yaml"):
        AccessPolicy.load(environ={POLICY_ENV: "/nowhere.yaml"})


def test_the_acting_identity_is_the_run_tag_then_the_environment_then_the_os_user() -> None:
    assert acting_identity({ACTOR_TAG: "sensor:x"}, {ACTOR_ENV: "bob"}) == "sensor:x"
    assert acting_identity({}, {ACTOR_ENV: "bob"}) == "bob"
    assert acting_identity(None, {}).startswith("local:")


def test_a_refusal_is_audited_before_it_is_raised(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=b"k" * 32)
    policy = AccessPolicy.parse(STRICT, source="strict.yaml")
    authorize(policy, ledger, actor="oncall-bob", action="rollback", subject="m:champion")
    assert ledger.audit_entries() == []
    with pytest.raises(AccessDenied, match="grants 'promote' to: admin") as refused:
        authorize(
            policy, ledger, actor="oncall-bob", action="promote", subject="m:champion", run_id="r1"
        )
    assert refused.value.role == "oncall"
    [entry] = ledger.audit_entries()
    assert (entry.action, entry.actor, entry.subject, entry.run_id) == (
        "access_denied",
        "oncall-bob",
        "m:champion",
        "r1",
    )
    assert entry.details["action"] == "promote"
    assert entry.details["policy_sha256"] == policy.sha256
    assert ledger.verify_audit().ok
    ledger.dispose()
