"""Drop-in replacements for the official NARes code's `dataset.py` and `search_space.py` (PROTOCOL §9).

`nares.compat.dataset` and `nares.compat.search_space` expose the official names and types, backed by
`nares.api` (the published `cifar10.jsonl`, an export, or a release folder); must not import training,
evaluation, Prefect, Ray or the app. Code written against the official files runs unchanged once their
module names point here:

    import sys, nares.compat.dataset, nares.compat.search_space
    sys.modules["dataset"], sys.modules["search_space"] = nares.compat.dataset, nares.compat.search_space
"""
