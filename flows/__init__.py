"""Prefect flows of the factory, read as a table of contents: each flow and task is a few calls into
`tasks/` (Ray) and `nares/` (the work). Holds no protocol logic (no torch, numpy, data, attack, model or
evaluation code, no numeric settings) and must not import `factory`.
"""
