"""Adversarial training of one architecture (PROTOCOL §2): `train_arch(arch, cfg, out_dir)`.

Owns the PGD-AT loop, the optimiser and schedule, per-epoch validation, the four checkpoints and
resume. Uses `nares.data`, `nares.attacks` and `nares.models`; never imports Prefect, Ray or S3 code.
"""

from nares.train.trainer import TrainResult, train_arch

__all__ = ["TrainResult", "train_arch"]
