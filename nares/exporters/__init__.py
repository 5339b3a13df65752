"""Exporters and importers between the long-format results table and published layouts.

`nares_jsonl`: the NARes `cifar10.jsonl` of the WRN space on CIFAR-10; `jung`: Jung et al.'s robustness dataset
layout (`meta.json` and `<dataset>/<key>_<accuracy|confidence|cm>.json`) of the NB201 space. Imports the results schema, records
and spaces; must not import the store, the evaluator, Prefect, Ray or the app.
"""
