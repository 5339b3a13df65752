"""Ray execution of a sweep: a pool of long-lived actors fed from a bounded, cost-ordered queue.

Adapts `nares.sweep` to Ray; holds no protocol logic of its own (no torch, numpy or attack/model/evaluation
code: that is the library's). Must not import `flows` or `factory`.
"""
