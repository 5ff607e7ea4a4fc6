"""Ground truth for deployed models: labels in, joined to the agents' prediction ids."""
from __future__ import annotations

from core.feedback.captured import refresh_all_captured, refresh_captured
from core.feedback.importing import FeedbackImport, import_feedback

__all__ = ["FeedbackImport", "import_feedback", "refresh_all_captured", "refresh_captured"]
