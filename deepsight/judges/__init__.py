"""Judges: a backend + a prompt template + a verdict parser; ``factory.JudgeFactory`` builds them by name."""

from deepsight.judges.base import UNKNOWN, Judge, JudgeInput, Verdict

__all__ = ["UNKNOWN", "Judge", "JudgeInput", "Verdict"]
