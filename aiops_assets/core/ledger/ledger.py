"""The ledger: every domain part over one engine and one audit chain."""

from __future__ import annotations

from aiops_assets.core.ledger.audit_trail import AuditTrailPart
from aiops_assets.core.ledger.features import FeatureSetsPart
from aiops_assets.core.ledger.flags import FlagsPart
from aiops_assets.core.ledger.promotion import PromotionsPart
from aiops_assets.core.ledger.reproducibility import CapsulesPart
from aiops_assets.core.ledger.rollout import RolloutsPart


class Ledger(
    PromotionsPart,
    RolloutsPart,
    CapsulesPart,
    FeatureSetsPart,
    FlagsPart,
    AuditTrailPart,
):
    """The registry and audit log behind one SQLAlchemy URL; safe to share across threads."""
