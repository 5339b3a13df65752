"""The paper's analyses of a NARes table (PROTOCOL §8): Pareto ranks, PCA, design ratios, correlations,
figures and the HTML report. Reads data through `nares.api`; must not import Prefect, Ray or training code.
"""

from nares.analysis.pareto import best_and_worst, pareto_ranks
from nares.analysis.pca import PCA, pca
from nares.analysis.ratios import depth_share, width_per_depth
from nares.analysis.stats import kendall_tau, pearson, spearman

__all__ = ["PCA", "best_and_worst", "depth_share", "kendall_tau", "pareto_ranks", "pca", "pearson", "spearman",
           "width_per_depth"]
