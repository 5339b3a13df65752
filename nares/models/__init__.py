"""Models of the search space: `build_model(arch, width_base)` builds the pre-activation WRN of PROTOCOL §1."""

from nares.models.wrn import PreActWRN, build_model, stage_channels

__all__ = ["PreActWRN", "build_model", "stage_channels"]
