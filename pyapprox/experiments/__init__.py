"""Experiments users run: library tables, evaluations, sweeps, search and reports."""
