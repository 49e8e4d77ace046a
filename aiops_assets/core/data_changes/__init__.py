"""What changed in one partition's data, per service and column, against known-good partitions.

The change log used to say only "new data (1728 rows)". This package says what moved: a column's
distribution (the drift engine's normalized Wasserstein distance), its level (the ratio of
medians, with factors near a power of ten called a probable unit change), its null, zero and
repeated-value rates, a service that vanished or appeared, row counts, duplicate rows and the
clock. It reads frames only, at any layer (raw snapshots or features), and knows nothing of the
orchestrator.

Significance is measured, not guessed. Every statistic is also computed leave-one-out among the
references (each reference against the pool of the others), which is how much that statistic
moves from one good day to the next; a finding needs ``max(floor, k * noise)``. With a single
reference only the floors apply. The defaults were chosen on generated days without any change
and checked on planted changes of held-out seeds (`CharacterizationThresholds`).

- :mod:`~aiops_assets.core.data_changes.results`: thresholds, findings, their JSON form;
- :mod:`~aiops_assets.core.data_changes.samples`: reading partitions, the statistics;
- :mod:`~aiops_assets.core.data_changes.characterize`: `characterize`.
"""

from aiops_assets.core.data_changes.characterize import characterize
from aiops_assets.core.data_changes.results import (
    KINDS,
    LAYERS,
    CharacterizationThresholds,
    DataCharacterization,
    Finding,
)

__all__ = [
    "KINDS",
    "LAYERS",
    "CharacterizationThresholds",
    "DataCharacterization",
    "Finding",
    "characterize",
]
