"""Reading a finished (or running) study: every trial as a DataFrame, the Pareto front, the
weights kept, exporting a network and reproducing a trial.
"""
