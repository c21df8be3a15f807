"""Batch sizes the toy figure plots."""

SIZES = [1, 2, 4]
