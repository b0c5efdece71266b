"""Baseline implementations used only as comparison points in benchmarks."""
