"""L∞ attacks and robustness metrics (PROTOCOL §3, §7.2–§7.4): FGSM, PGD (CE / CW margin; least-likely targeted),
APGD-CE, APGD-T, AA-Compact, FAB-T, Square, MI-FGSM, stable accuracy, the empirical Lipschitz estimate, and
`evaluate_attacks` over a data set.

Attacks take and return images in [0, 1]; ε and step sizes are in the same units (params.yaml's `*_255`
numbers divided by 255). This package depends only on torch and must not import training, storage or
orchestration code.
"""

from nares.attacks.apgd import (
    aa_compact,
    apgd,
    apgd_checkpoints,
    apgd_targeted,
    apgd_targeted_with_mask,
    apgd_with_mask,
)
from nares.attacks.common import AttackError, project
from nares.attacks.fab import fab_targeted, fab_targeted_with_mask
from nares.attacks.least_likely import least_likely_class, pgd_least_likely
from nares.attacks.losses import cw_margin_loss, dlr_loss, dlr_targeted_loss, margin
from nares.attacks.metrics import LIPSCHITZ_OFFSET, empirical_lipschitz, stable_mask
from nares.attacks.mifgsm import mifgsm
from nares.attacks.pgd import fgsm, pgd
from nares.attacks.square import square, square_with_mask
from nares.attacks.suite import ATTACK_NAMES, AttackMetrics, attack_settings, evaluate_attacks

__all__ = [
    "ATTACK_NAMES",
    "LIPSCHITZ_OFFSET",
    "AttackError",
    "AttackMetrics",
    "aa_compact",
    "apgd",
    "apgd_checkpoints",
    "apgd_targeted",
    "apgd_targeted_with_mask",
    "apgd_with_mask",
    "attack_settings",
    "cw_margin_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "empirical_lipschitz",
    "evaluate_attacks",
    "fab_targeted",
    "fab_targeted_with_mask",
    "fgsm",
    "least_likely_class",
    "margin",
    "mifgsm",
    "pgd",
    "pgd_least_likely",
    "project",
    "square",
    "square_with_mask",
    "stable_mask",
]
