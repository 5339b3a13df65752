"""Transitional alias of the WRN closed form (`nares.spaces.wrn`) and `nares.models.count`; removed with the last
module not yet rewired."""

from nares.models.count import count_module  # noqa: F401
from nares.spaces.wrn import IMAGE_SIZE, _counts, macs, params  # noqa: F401
