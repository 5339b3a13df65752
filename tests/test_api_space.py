"""open_dataset(...).space: a published-layout jsonl is a data set of the WRN space, and its archs parse through it."""

from __future__ import annotations

from nares.api.dataset import Dataset
from nares.spaces import get_space
from nares.spaces.wrn import SPACE


def test_dataset_space_is_the_wrn_space():
    assert Dataset.space.fget(None) is SPACE  # no table needed: the published layout is the WRN space's
    assert get_space("wrn").name == SPACE.name == "wrn"
    assert SPACE.format(SPACE.parse("5-10-5-10-5-10")) == "5-10-5-10-5-10"
