"""Official files: download addresses, sizes and checksums, and how each archive is unpacked.

Provenance of every checksum (none is computed from a local copy of unknown origin):
- CIFAR-10 tarball and per-file md5s: the md5s that torchvision's CIFAR10 class checks; the same
  values are listed in the offline data README (which also verified batches.meta byte for byte).
- CIFAR-10.1 v6 labels md5: computed on modestyachts/CIFAR-10.1 `datasets/cifar10.1_v6_labels.npy`
  at commit d9982abb (data README). CIFAR-10.1 v6 data md5: listed identically by three independent
  public loaders (each of which also lists the labels md5 above); not recomputed here (the file is
  absent offline).
- CIFAR-10-C: `CIFAR-10-C.tar` of Zenodo record 2535967, md5 as listed on Zenodo and size
  2,918,471,680 bytes as quoted beside it. No public per-file checksum of the extracted
  `<corruption>.npy` files was found, so extracted files are checked for shape and dtype only.
"""

from __future__ import annotations

from dataclasses import dataclass

from nares.constants import CORRUPTIONS
from nares.data import paths


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its address, its name in the dataset folder, md5 and (if known) size."""

    url: str
    filename: str
    md5: str
    size: int | None = None


@dataclass(frozen=True)
class Unpack:
    """Extract the archive members under `member_prefix` into `<folder>/<into>` (prefix stripped)."""

    member_prefix: str
    into: str
    keep_archive: bool
    expected: tuple[str, ...]  # paths relative to the dataset folder that extraction must produce


@dataclass(frozen=True)
class Remote:
    """A fetchable dataset: the folder under the data root, its files, and an optional unpack step."""

    name: str
    folder: str
    files: tuple[RemoteFile, ...]
    unpack: Unpack | None = None

    def complete(self) -> tuple[str, ...]:
        """Paths (relative to the folder) whose presence means the dataset is already fetched."""
        return self.unpack.expected if self.unpack else tuple(f.filename for f in self.files)


CIFAR10_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_BATCH_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR10_TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCHES: tuple[str, ...] = ("test_batch",)

CIFAR101_MD5: dict[str, str] = {
    paths.CIFAR101_DATA: "4fcae82cb1326aec9ed1dc1fc62345b8",
    paths.CIFAR101_LABELS: "09a97fb7c430502fcbd69d95093a3f85",
}
CIFAR10C_TAR_MD5 = "56bf5dcef84df0e2308c6dcbcbbd8499"

_CIFAR101_URL = "https://raw.githubusercontent.com/modestyachts/CIFAR-10.1/master/datasets/"

REMOTES: dict[str, Remote] = {
    "cifar10": Remote(
        name="cifar10",
        folder=paths.CIFAR10_DIR,
        files=(RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", paths.CIFAR10_TARBALL,
                          CIFAR10_TARBALL_MD5, 170_498_071),),
        unpack=Unpack(member_prefix=f"{paths.CIFAR10_BATCHES_DIR}/", into=paths.CIFAR10_BATCHES_DIR,
                      keep_archive=True,
                      expected=tuple(f"{paths.CIFAR10_BATCHES_DIR}/{b}" for b in CIFAR10_BATCH_MD5)),
    ),
    "cifar10.1": Remote(
        name="cifar10.1",
        folder=paths.CIFAR101_DIR,
        files=tuple(RemoteFile(_CIFAR101_URL + name, name, md5) for name, md5 in CIFAR101_MD5.items()),
    ),
    "cifar10-c": Remote(
        name="cifar10-c",
        folder=paths.CIFAR10C_DIR,
        files=(RemoteFile("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1", "CIFAR-10-C.tar",
                          CIFAR10C_TAR_MD5, 2_918_471_680),),
        unpack=Unpack(member_prefix="CIFAR-10-C/", into="", keep_archive=False,
                      expected=(*(f"{c}.npy" for c in CORRUPTIONS), paths.CIFAR10C_LABELS)),
    ),
}
