"""The NAS benchmark on a NARes table (PROTOCOL §6): a query-counting oracle and four search algorithms.

Owns black-box search over the architectures of an enumerable search space (15,625 for WRN), or over those a
release answers (`nares.nas.subspace.AnsweredSpace`, chosen by `nares.nas.runner.search_problem`); reads
objectives through `nares.api` or a plain array. Must not import Prefect, Ray, training or evaluation code.
"""

from nares.nas.algorithms import ALGORITHMS
from nares.nas.oracle import BudgetExhausted, Oracle
from nares.nas.runner import RunResult, run_many, summarize

__all__ = ["ALGORITHMS", "BudgetExhausted", "Oracle", "RunResult", "run_many", "summarize"]
