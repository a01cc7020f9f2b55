"""Pure rules below every stage of a study: Pareto dominance and the front, and redaction of
credentials. They import nothing else of ``studies``.
"""
