"""Evaluation of a trained checkpoint (PROTOCOL §3) and the run's published record (§4): `evaluate_run`.

Owns the evaluation cells (clean, FGSM, PGD-20, CW-40, AA-Compact, CIFAR-10-C, complexity), the
per-run ledger `evaluations.jsonl` and `record.jsonl`. Attacks come from `nares.attacks`, the record
layout from `nares.records`; never imports Prefect, Ray or S3 code.
"""

from nares.evaluate.runner import evaluate_run

__all__ = ["evaluate_run"]
