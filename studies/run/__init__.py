"""Running a study: the trial (objective, measure, early stopping), the run loop and its
workers, crash safety, and the entry points launch, ablate and worker.
"""
