"""The library side of a sweep over the search space: which architectures, in which order, what is done,
what it costs, and what one worker does per architecture.

Owns selection, the bounded work queue, the sweep journal, cost estimation and the stale-cell rule.
Must not import Prefect or Ray (those adapters live in `tasks/` and `flows/`).
"""
