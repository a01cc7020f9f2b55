"""Timing a network: the latency runner, the drift reference it alternates with, the machine-wide
timing lock (quiet) and the per-layer latency table.
"""
