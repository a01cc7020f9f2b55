"""wandb as a view of a study: one run per trial and one for the front (``tracker``), and reading
offline runs back from disk (``offline``).
"""
