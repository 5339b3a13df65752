"""CIFAR data: readers for the official files, checksummed downloads, splits and device-resident batches.

Owns every byte of image data the project reads (CIFAR-10, CIFAR-10.1 v6, CIFAR-10-C and the
offline CIFAR-10 subset), and CIFAR-10-C generated here (`make_cifar10c`, with CIFAR-10-C's own constants).
Must not import Prefect, Ray, S3 code or torchvision; imports numpy and torch at module level (scipy, OpenCV
and Pillow only inside the corruption generator).
"""

from nares.data.batches import DeviceBatches, crop_flip
from nares.data.corruptions import (
    check_corruptions,
    corruption_set_info,
    corruptions_available,
    iter_corruptions,
)
from nares.data.download import download_file, fetch, fetch_remote
from nares.data.images import ImageSet
from nares.data.inventory import data_inventory
from nares.data.paths import data_root
from nares.data.readers import read_cifar10_python, read_cifar101, read_corruption, read_npz_subset
from nares.data.splits import Splits, holdout_indices, load_splits

__all__ = [
    "DeviceBatches",
    "ImageSet",
    "Splits",
    "check_corruptions",
    "corruption_set_info",
    "corruptions_available",
    "crop_flip",
    "data_inventory",
    "data_root",
    "download_file",
    "fetch",
    "fetch_remote",
    "holdout_indices",
    "iter_corruptions",
    "load_splits",
    "read_cifar10_python",
    "read_cifar101",
    "read_corruption",
    "read_npz_subset",
]
