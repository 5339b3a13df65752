"""Training-free / diagnostic proxies (PROTOCOL §7.2, §7.4): the input-Jacobian Frobenius norm by random
projections, the dominant eigenvalue of the CE input Hessian by power iteration, the FSP distance of RobNets,
and `over_batches` to average any of them over batches.

Pure library functions on a model and tensors: no evaluation is registered here. This package depends only
on torch and `nares.attacks.common`; it must not import the store, Prefect, Ray or the app.
"""

from nares.proxies.fsp import fsp_distance, fsp_matrix, fsp_matrix_distance, match_sizes
from nares.proxies.hessian import hessian_top_eigenvalue, hessian_top_eigenvalues
from nares.proxies.jacobian import (
    ProxyError,
    eval_mode,
    jacobian_frobenius,
    jacobian_frobenius_exact,
    over_batches,
)

__all__ = [
    "ProxyError",
    "eval_mode",
    "fsp_distance",
    "fsp_matrix",
    "fsp_matrix_distance",
    "hessian_top_eigenvalue",
    "hessian_top_eigenvalues",
    "jacobian_frobenius",
    "jacobian_frobenius_exact",
    "match_sizes",
    "over_batches",
]
