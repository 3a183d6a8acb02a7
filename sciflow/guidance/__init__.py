"""Guidance: classifier-free here; classifier and reward guidance register alongside."""
from sciflow.guidance.cfg import drop_condition, guided, null_condition

__all__ = ["drop_condition", "guided", "null_condition"]
