"""A network's numbers without training it: fvcore's FLOPs count, training-free scores, and the
stored measurements of a tabular benchmark.
"""
