"""NARes: a neural architecture dataset for adversarial robustness, and the factory that builds it.

`nares` is a pure library: it imports neither Prefect nor Ray and runs on a laptop CPU.
"""

__version__ = "0.1.0"
