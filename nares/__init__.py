"""NARes: a neural architecture dataset for adversarial robustness, and the library that builds it.

`nares` is a pure library: search spaces, data, training, attacks, evaluation, tables, store, validation,
release, query API, NAS and analysis. It runs on a laptop CPU and must not import Prefect, Ray, `flows`,
`tasks` or the application package `factory` (the CLI, the stack and its processes); see
tests/test_import_graph.py for the rules it is held to.
"""

__version__ = "0.1.0"
