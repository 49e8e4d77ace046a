"""Moving artifacts between assets: the IO manager and the helpers that read what it hands over.

Assets hand each other :class:`~aiops_assets.core.store.ArtifactRef` pointers, never raw objects.
The asset writes its artifact into the content-addressed store itself, because only then does it
know the SHA-256 that becomes its Dagster data version at the moment it yields the output. The IO
manager then only moves the asset's named ref and, downstream, loads and verifies the object.
"""

import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import dagster as dg
import pandas as pd

from aiops_assets.core.memory import release_free_memory
from aiops_assets.core.store import ArtifactRef, ArtifactStore

# Input metadata: the asset can do without some upstream partitions (history, or a training window
# with a quarantined day); those partitions are left out of the dict it receives.
ALLOW_MISSING_PARTITIONS = "aiops/allow_missing_partitions"


def asset_ref_name(asset_key: dg.AssetKey, partition_key: str | None) -> str:
    """The store ref that holds an asset partition's current artifact."""
    return "/".join(["assets", *asset_key.path, partition_key or "_"])


class ArtifactRefIOManager(dg.ConfigurableIOManager):
    """Persists an asset's :class:`ArtifactRef` and loads the referenced object, verified.

    An input annotated ``ArtifactRef`` (or ``dict[str, ArtifactRef]``) receives the refs themselves,
    for assets that need the upstream hash (to record it) or want to stream the object. Any other
    input receives the decoded object (a DataFrame for Parquet). A partitioned upstream always
    arrives as a dict keyed by partition, even when the mapping selects one partition, so asset
    code does not need to special-case the first partition of a range. An input whose metadata
    sets ``ALLOW_MISSING_PARTITIONS`` (``ArtifactRefIOManager.ALLOW_MISSING_PARTITIONS``)
    receives only the partitions that have a current version; ``ref_name`` says under which store
    ref a partition's current version is, for an asset that reads one without an input for it.
    Drift baselines are stored through it under the resource key ``artifact_io_manager``.

    Attributes:
        root: The same store root as the ``artifact_store`` resource.

    Example:
        >>> dg.Definitions(  # doctest: +SKIP
        ...     assets=[baseline],
        ...     resources={"artifact_io_manager": ArtifactRefIOManager(root=".aiops/store")},
        ... )
        >>> history = dg.AssetIn(  # doctest: +SKIP
        ...     metadata={ArtifactRefIOManager.ALLOW_MISSING_PARTITIONS: True}
        ... )
    """

    # The input metadata key, on the class so a host reaches it through the public name.
    ALLOW_MISSING_PARTITIONS: ClassVar[str] = ALLOW_MISSING_PARTITIONS

    root: str

    @staticmethod
    def ref_name(asset_key: dg.AssetKey, partition_key: str | None) -> str:
        """The store ref holding an asset partition's current artifact (``None``: unpartitioned)."""
        return asset_ref_name(asset_key, partition_key)

    def get_store(self) -> ArtifactStore:
        # A plain root rather than a nested ArtifactStoreResource: nesting makes Dagster 1.13 call
        # a deprecated API internally on every run, and both resources are built from one setting.
        return ArtifactStore(self.root)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not isinstance(obj, ArtifactRef):
            raise TypeError(
                f"asset {context.asset_key.to_user_string()} returned {type(obj).__name__}; assets "
                "using the artifact IO manager must store their artifact and return its ArtifactRef"
            )
        partition_key = context.partition_key if context.has_partition_key else None
        self.get_store().set_ref(asset_ref_name(context.asset_key, partition_key), obj)

    def load_input(self, context: dg.InputContext) -> Any:
        # A step's inputs load at its start: the steps before it in this process have ended, and
        # what they freed goes back to the system before this one allocates (core/memory.py).
        release_free_memory()
        store = self.get_store()
        wants_refs = _wants_refs(context)
        asset_key = context.asset_key

        def missing(partition_key: str | None) -> dg.Failure:
            where = f"{asset_key.to_user_string()}" + (
                f"[{partition_key}]" if partition_key else ""
            )
            return dg.Failure(
                description=(
                    f"{where} has no current version in the artifact store at {store.root} (never "
                    "materialized, or quarantined by its quality checks); materialize it first"
                )
            )

        if not context.has_asset_partitions:
            ref = store.get_ref(asset_ref_name(asset_key, None))
            if ref is None:
                raise missing(None)
            return ref if wants_refs else store.load(ref)

        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS))
        loaded: dict[str, Any] = {}
        for partition_key in context.asset_partition_keys:
            ref = store.get_ref(asset_ref_name(asset_key, partition_key))
            if ref is None:
                if not allow_missing:
                    raise missing(partition_key)
                context.log.warning(
                    f"{asset_key.to_user_string()}[{partition_key}] has no current version; "
                    "continuing without it"
                )
                continue
            loaded[partition_key] = ref if wants_refs else store.load(ref)
        return loaded


def _wants_refs(context: dg.InputContext) -> bool:
    typing_type = context.dagster_type.typing_type
    return typing_type is ArtifactRef or ArtifactRef in typing.get_args(typing_type)


def partition_frame(
    value: Any, context: dg.AssetCheckExecutionContext, *, purpose: str
) -> pd.DataFrame:
    """Our IO manager hands partitioned values over as {partition: frame}; others hand a frame."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, Mapping):
        frames: Sequence[Any] = list(value.values())
        if context.has_partition_key and context.partition_key in value:
            frames = [value[context.partition_key]]
        if frames and all(isinstance(frame, pd.DataFrame) for frame in frames):
            return pd.concat(frames, ignore_index=True)
    raise TypeError(
        f"{purpose} need a pandas DataFrame, but the asset's IO manager loaded {type(value).__name__}"
    )
