"""Training one trial: the training config, the epoch loop, the accuracy runner, memory
accounting and the weights written to disk.
"""
