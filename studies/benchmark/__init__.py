"""Tools built on studies for judging search methods: the tabular benchmark table, training-free
score ranking, and the per-device latency table.
"""
