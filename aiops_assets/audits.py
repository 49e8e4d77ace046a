"""``audit_verify_job``: ``aiops audit verify`` as a Dagster job, so a schedule can run it daily.

The audit chain is the registry's source of truth; a tampered entry found a month later is an
incident nobody can date. The job checks the chain, the MAC of every entry, every registry row
against the chain, the heads Dagster observed and each critical entry's signer, exactly as the
CLI does, and when anything is broken it sends one alert naming the problems and fails the run
(red in the UI, and a run failure for whatever else watches runs).
"""

import dagster as dg

from aiops_assets.audit_head import observed_heads
from aiops_assets.core.ledger import AuditVerification, LedgerError
from aiops_assets.core.policy import PolicyError, verify_signers
from aiops_assets.resources import AccessPolicyResource, AlertSinkResource, LedgerResource

AUDIT_VERIFY_JOB = "audit_verify_job"
AUDIT_ASSET = "audit_log"


@dg.op(
    description=(
        "Recomputes the audit chain and the registry from it, as `aiops audit verify` does; "
        "alerts and fails when an entry or a registry row does not verify."
    )
)
def verify_audit_chain(
    context: dg.OpExecutionContext,
    ledger: LedgerResource,
    access_policy: AccessPolicyResource,
    alert_sink: AlertSinkResource,
) -> dg.Output[bool]:
    try:
        verification = _verify(context, ledger, access_policy)
    except (LedgerError, PolicyError, OSError) as error:
        _alert(context, alert_sink, "ERROR", f"audit verify could not run: {error}")
        raise dg.Failure(description=f"audit verify could not run: {error}") from error
    summary = verification.summary()
    if not verification.ok:
        _alert(context, alert_sink, "ERROR", summary)
        raise dg.Failure(
            description=summary,
            metadata={"problems": dg.MetadataValue.int(len(verification.problems))},
        )
    context.log.info(summary)
    return dg.Output(
        True,
        metadata={
            "entries": dg.MetadataValue.int(verification.entries),
            "notes": dg.MetadataValue.int(len(verification.notes)),
        },
    )


def _verify(
    context: dg.OpExecutionContext, ledger: LedgerResource, access_policy: AccessPolicyResource
) -> AuditVerification:
    registry = ledger.get_ledger()
    verification = registry.verify_audit(observed_heads(context.instance))
    return verify_signers(access_policy.get_policy(), registry.audit_entries(), verification)


def _alert(
    context: dg.OpExecutionContext, alert_sink: AlertSinkResource, severity: str, summary: str
) -> None:
    alert_sink.notify(
        context.log,
        kind="audit_verify_failed",
        severity=severity,
        summary=summary,
        asset=AUDIT_ASSET,
        run_id=context.run_id,
    )


def build_audit_verify_job(name: str = AUDIT_VERIFY_JOB) -> dg.JobDefinition:
    """The job that verifies the ledger's tamper-evident audit chain, for a schedule to run.

    A broken chain fails the run and sends an alert; a whole chain records the head it saw as an
    observation, a second witness outside the ledger. It needs the ``ledger``, ``access_policy``
    and ``alert_sink`` resources of the code location.

    Args:
        name: The job's name (``audit_verify_job`` by default).

    Example:
        >>> job = build_audit_verify_job()  # doctest: +SKIP
    """

    @dg.job(
        name=name,
        description="Verify the tamper-evident audit chain; alert and fail if it is broken.",
    )
    def audit_verify() -> None:
        verify_audit_chain()

    return audit_verify
