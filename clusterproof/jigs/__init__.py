"""Jigs: one small object per topic holding the verbs its suite needs (see docs/DESIGN.md)."""
