"""Drift engine: baseline profiles, drift statistics, false-discovery control and the alert policy.

Why it is shaped this way:

- A drift check runs on every new partition, so it must never rescan the reference window. The
  reference is summarized once into a `BaselineProfile` (content-addressed like any other
  artifact) and a check takes that profile plus the current data only (`profiles`).
- Small references keep every sorted value (*exact* mode): the statistics then equal the textbook
  ones (scipy's to ~1e-15). Large references keep a quantile sketch (*sketch* mode, `sketch`)
  whose error is bounded and reported with every statistic, so a reader knows how far a number
  can be off (`statistics`).
- Profiles merge (partitions of a window, chunks of a large partition): exact profiles and
  sketches on the same grid merge exactly, so ``profile(A + B) == merge(profile(A), profile(B))``.
- A p-value alone alarms on any shift once the sample is big enough, and testing many features
  alarms by chance. So the policy (a versioned YAML file whose SHA-256 goes into every result)
  combines Benjamini-Hochberg across features with an effect-size floor, optional thresholds
  calibrated on reference chunks (`calibration`), and persistence over partitions (`policy`).
- `verdicts` reads one evaluation top to bottom: statistics, FDR, floors, persistence, report.

Plain Python, no orchestrator import: the Dagster checks in `aiops_assets.checks.drift` wrap it.
"""

from aiops_assets.core.drift._common import (
    BINARY_MEASURES,
    CATEGORICAL_MEASURES,
    KINDS,
    NUMERIC_MEASURES,
    VERDICTS,
    DataLike,
    Kind,
    Mode,
    Role,
    Verdict,
)
from aiops_assets.core.drift.calibration import calibrate
from aiops_assets.core.drift.policy import (
    DEFAULT_POLICY_PATH,
    DriftPolicy,
    KindPolicy,
    benjamini_hochberg,
    load_policy,
    persistence_met,
)
from aiops_assets.core.drift.profiles import (
    DEFAULT_EXACT_MAX_ROWS,
    DEFAULT_MAX_SLICES,
    DEFAULT_MIN_SLICE_ROWS,
    DEFAULT_PSI_BINS,
    DEFAULT_SKETCH_BINS,
    PROFILE_SCHEMA_VERSION,
    BaselineProfile,
    CalibrationStats,
    FeatureProfile,
    build_profile,
    merge_profiles,
)
from aiops_assets.core.drift.sketch import NumericSketch
from aiops_assets.core.drift.statistics import (
    KS_EXACT_P_MAX_N,
    PSI_EPSILON,
    FeatureStatistics,
    chi2_homogeneity,
    compute_statistics,
    ks_p_values,
    psi_and_js,
)
from aiops_assets.core.drift.verdicts import (
    DriftResult,
    FeatureDrift,
    evaluate_drift,
    evaluate_slices,
    slices_markdown,
)

__all__ = [
    "BINARY_MEASURES",
    "CATEGORICAL_MEASURES",
    "DEFAULT_EXACT_MAX_ROWS",
    "DEFAULT_MAX_SLICES",
    "DEFAULT_MIN_SLICE_ROWS",
    "DEFAULT_POLICY_PATH",
    "DEFAULT_PSI_BINS",
    "DEFAULT_SKETCH_BINS",
    "KINDS",
    "KS_EXACT_P_MAX_N",
    "NUMERIC_MEASURES",
    "PROFILE_SCHEMA_VERSION",
    "PSI_EPSILON",
    "VERDICTS",
    "BaselineProfile",
    "CalibrationStats",
    "DataLike",
    "DriftPolicy",
    "DriftResult",
    "FeatureDrift",
    "FeatureProfile",
    "FeatureStatistics",
    "Kind",
    "KindPolicy",
    "Mode",
    "NumericSketch",
    "Role",
    "Verdict",
    "benjamini_hochberg",
    "build_profile",
    "calibrate",
    "chi2_homogeneity",
    "compute_statistics",
    "evaluate_drift",
    "evaluate_slices",
    "ks_p_values",
    "load_policy",
    "merge_profiles",
    "persistence_met",
    "psi_and_js",
    "slices_markdown",
]
