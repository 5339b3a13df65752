"""Torch modules of the search spaces, built from plain numbers (depths, channels); `count_module` walks one.

Must not import `nares.spaces` (a space maps its architectures to these modules, never the reverse).
"""

from nares.models.wrn import PreActWRN

__all__ = ["PreActWRN", "build_model"]


def build_model(arch, width_base: int = 16, num_classes: int = 10):  # type: ignore[no-untyped-def]
    """Transitional: `nares.spaces.wrn.build_model`, for callers not yet rewired to `space.build_model`."""
    from nares.spaces.wrn import build_model as build

    return build(arch, width_base, num_classes)
