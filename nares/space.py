"""Transitional alias of `nares.spaces.wrn` (the WRN space) for modules not yet rewired; removed with the last."""

from nares.spaces.wrn import (  # noqa: F401
    COORD_COLUMNS,
    DEPTHS,
    JSONL_KEYS,
    N_ARCHS,
    WIDTHS,
    Arch,
    ArchIndex,
    all_archs,
    arch_from_id,
    arch_id,
    choice_indices,
    neighbours,
    one_hot,
    random_archs,
)
