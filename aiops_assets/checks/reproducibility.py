"""``champion_model.reproducible``: re-run the champion's training from its capsule, on demand.

On demand because a re-run costs a training: it is excluded from every job and from the demo,
and launched from the check's page in the UI (or with ``aiops reproduce champion``) when someone
needs the proof, for example before an audit or after a library upgrade.
"""

import dagster as dg

from aiops_assets.core.markdown import md_code_block, md_text
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.reproduce import ReproductionError, run_in_fresh_process
from aiops_assets.keys import REPRODUCIBLE_CHECK_NAME
from aiops_assets.resources import ArtifactStoreResource, LedgerResource


def build_reproducible_check(
    model_asset: dg.AssetKey | str = "champion_model",
    *,
    model_name: str = MODEL_NAME,
    alias: str = CHAMPION,
) -> dg.AssetChecksDefinition:
    """An ERROR check that the model behind ``alias`` re-trains to the same bytes and metrics.

    On demand: it re-runs the version's recorded capsule in a fresh process (``aiops
    reproduce``), which costs a training, so no job or sensor launches it.

    Args:
        model_asset: The model asset the check is attached to.
        model_name: The registered model whose version is re-trained.
        alias: The alias naming that version (``champion`` by default).

    Example:
        >>> check = build_reproducible_check("champion_model")  # doctest: +SKIP
    """

    @dg.asset_check(
        asset=model_asset,
        name=REPRODUCIBLE_CHECK_NAME,
        description=(
            f"Re-runs the training of {model_name}'s {alias} from its capsule in a fresh process "
            "and compares the training-set and model hashes and the metrics (on demand)."
        ),
    )
    def reproducible(
        ledger: LedgerResource, artifact_store: ArtifactStoreResource
    ) -> dg.AssetCheckResult:
        registry = ledger.get_ledger()
        version = registry.get_alias(model_name, alias)
        capsule = (
            registry.get_capsule(version.capsule_ref)
            if version is not None and version.capsule_ref
            else None
        )
        if version is None or capsule is None:
            return dg.AssetCheckResult(
                passed=False,
                metadata={
                    "summary": dg.MetadataValue.md(
                        f"{md_text(model_name)} {md_text(alias)} has no recorded capsule to re-run"
                        if version is not None
                        else f"{md_text(model_name)} has no {md_text(alias)}"
                    )
                },
            )
        try:
            reproduction = run_in_fresh_process(capsule, artifact_store.root)
        except ReproductionError as error:
            raise dg.Failure(description=str(error)) from error
        lines = reproduction.lines()
        return dg.AssetCheckResult(
            passed=reproduction.ok,
            metadata={
                "summary": dg.MetadataValue.md(
                    f"**{md_text(model_name)} v{version.version}**: "
                    + md_text(lines[0])
                    + "\n\n"
                    + md_code_block(lines[1:])
                ),
                "capsule_id": dg.MetadataValue.text(capsule.capsule_id),
                "model_version": dg.MetadataValue.int(version.version),
                "seconds": dg.MetadataValue.float(reproduction.seconds),
                "environment_differences": dg.MetadataValue.int(len(reproduction.environment)),
            },
        )

    return reproducible
