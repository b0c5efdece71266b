"""Benchmarks comparing textgen against reference implementations."""
