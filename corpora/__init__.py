"""Corpora bundled with textgen; installed as the `textgen.corpora` package data."""
