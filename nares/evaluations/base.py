"""The evaluation interface: `Evaluation` (name, typed settings, version, cost, compute) and `Value`.

An evaluation owns what it measures and how (its settings section, its cost in image-gradient passes, its
values keyed by (metric, key)); batching, device placement, masks of still-robust points and seeds stay with
the evaluator (`nares.attacks.suite`, `nares.evaluate`). Must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from nares.errors import ConfigError
from nares.settings import _parse  # the preset schema's checker: one ConfigError line naming the dotted key

Unit = Literal["percent", "raw", "count"]
FWD = 1.0 / 3.0  # a forward-only pass ≈ 1/3 of a forward+backward image-gradient pass


@dataclass(frozen=True)
class Value:
    """One computed number: `metric` of the evaluation at `key` ("" for none; else ε, σ, severity, class)."""

    metric: str
    key: str
    value: float


@dataclass
class EvalContext:
    """What `compute` may use: the eval-mode model and test tensors (None when not needed), the first training
    images (`x_train`, `y_train`: without augmentation, in the split's fixed order; loaded only for an evaluation
    with `needs_train`), the preset dict, the device, the architecture and its search space."""

    cfg: dict[str, Any]
    model: Any = None
    x: Any = None
    y: Any = None
    device: Any = None
    channels_last: bool = False
    arch: Any = None
    space: Any = None
    cells: Any = None  # {evaluation: its ledger values} of the same checkpoint computed so far (the masking checks)
    x_train: Any = None
    y_train: Any = None


class Evaluation(ABC):
    """One attack, corruption set, proxy or count. Subclasses set `name`, `Settings` (a frozen dataclass whose
    fields follow nares.settings' rules) and `units` ({metric: unit}; accuracies are "percent" in the results
    table, fractions in the ledger), and implement `section`, `cost` and `cell`.

    What the evaluator loads for it: the model (`needs_model`), the test tensors (`needs_test`), the first
    `train_images(cfg)` training images (`needs_train`). `needs_corruptions`: it reads CIFAR-10-C, and is skipped
    where the files are absent (`unavailable`). `cost_images`: which image count `cost` is given by a suite's cost
    model ("test": the test images; "corruptions": the images of one CIFAR-10-C cell)."""

    name: ClassVar[str]
    Settings: ClassVar[type]
    units: ClassVar[Mapping[str, Unit]]
    needs_model: ClassVar[bool] = True
    needs_test: ClassVar[bool] = True
    needs_train: ClassVar[bool] = False
    needs_corruptions: ClassVar[bool] = False
    cost_images: ClassVar[str] = "test"

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The raw settings of this evaluation read from a preset dict (default: `cfg["eval"][name]`)."""
        return dict(cfg["eval"].get(self.name) or {})

    def settings(self, cfg: Mapping[str, Any], where: str = "eval") -> Any:
        """The typed settings, checked: a bad value raises one ConfigError line naming `where.name.key`."""
        return _parse(self.Settings, self.section(cfg), f"{where}.{self.name}", {})

    def train_images(self, cfg: Mapping[str, Any]) -> int:
        """How many of the first training images `cell` reads (asked only when `needs_train`; 0: none)."""
        return 0

    def unavailable(self, cfg: Mapping[str, Any]) -> str | None:
        """Why this evaluation cannot run here (the evaluator records it as skipped), or None when it can."""
        if self.needs_corruptions:
            from nares.data import corruptions_available

            if not corruptions_available():
                return "CIFAR-10-C files are not present"
        return None

    def version(self, cfg: Mapping[str, Any]) -> int:
        """`eval.metric_versions[name]` (1 when the preset does not list it)."""
        return int((cfg["eval"].get("metric_versions") or {}).get(self.name, 1))

    @abstractmethod
    def cost(self, settings: Any, n_images: int) -> float:
        """Image-gradient passes (forward+backward; a forward-only pass counts FWD) over `n_images` images."""

    @abstractmethod
    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        """The ledger's `values` of one cell (the evaluator's own units: fractions)."""

    @abstractmethod
    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        """A ledger cell's values as `Value` rows in the declared units."""

    def compute(self, ctx: EvalContext) -> list[Value]:
        return self.values(self.cell(ctx))


def settings_class(name: str, **fields: Any) -> type:
    """A frozen settings dataclass from {field: (type, rule(...) or None)} (empty for evaluations without settings)."""
    spec = [(k, tp, dataclasses.field() if meta is None else meta) for k, (tp, meta) in fields.items()]
    return dataclasses.make_dataclass(name, spec, frozen=True)


def check_units(ev: Evaluation) -> None:
    bad = {m: u for m, u in ev.units.items() if u not in ("percent", "raw", "count")}
    if bad:
        raise ConfigError(f"evaluation {ev.name!r} declares unknown units {bad} (allowed: percent, raw, count)")
