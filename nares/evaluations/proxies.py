"""The diagnostic proxies of Jung et al. (PROTOCOL §7.2) as evaluations: the input-Jacobian Frobenius norm of the
logits (random projections) and the dominant eigenvalue of the input Hessian of CE (power iteration), each
averaged over `batches` × `batch_size` images of each split of `splits` (train, test), on the evaluated checkpoint
(keys "test", "train") and, with `at_init`, on the same architecture freshly initialised from the evaluation seed
(keys "test@init", "train@init").

Images: the first `batches` × `batch_size` of the split in its fixed order (fewer when the split is smaller: all
it has); train images without augmentation (the evaluator's `EvalContext.x_train`). Draws: the projections or
power-iteration starts of a split come from one generator per split (`split_seed`), shared in order by the
trained model and then the one at initialisation; the test split's seed is the one used before the train split
existed, so its values are unchanged. Splits run test first, then train.

`init_cell` computes the same proxies of an architecture at initialisation alone, no training needed (the
`nares proxies` command over a whole space): its model is drawn from a seed per architecture (`arch_seed`).

The computations are `nares.proxies`; must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch

from nares.errors import ConfigError
from nares.evaluations.base import EvalContext, Evaluation, Value, settings_class
from nares.settings import rule

Split = Literal["train", "test"]
SPLIT_ORDER: tuple[str, ...] = ("test", "train")  # the order splits are computed in (see the module docstring)
INIT = "init"  # the checkpoint name of values at initialisation in the results table
_COMMON = {"batches": (int, rule(ge=1)), "batch_size": (int, rule(ge=1)), "at_init": (bool, None),
           "splits": (tuple[Split, ...], rule(nonempty=True))}
Batch = tuple[torch.Tensor, torch.Tensor]


def _seed(base: int, name: str) -> int:
    from nares.attacks.suite import _attack_seed

    return _attack_seed(base, name)


def split_seed(base: int, name: str, split: str) -> int:
    """The seed of proxy `name`'s draws on `split`: derived from (base, name) for test, (base, "name/split") else."""
    return _seed(base, name if split == "test" else f"{name}/{split}")


def arch_seed(cfg: Mapping[str, Any], space: Any, arch: Any) -> int:
    """The seed an architecture is initialised from by `nares proxies`: derived from `eval.seed`, the space's name
    and the architecture's canonical string (not its id, which an imported id map may change)."""
    return _seed(int(cfg["eval"]["seed"]), f"{INIT}:{space.name}:{space.format(arch)}")


def init_model(space: Any, arch: Any, cfg: Mapping[str, Any], seed: int, device: Any = None) -> torch.nn.Module:
    """`arch` of `space` at the preset's model scale, initialised after `torch.manual_seed(seed)` in a forked RNG
    (the process's random state is left as it was), in eval mode on `device`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build_model(arch, cfg["model"]["width_base"], num_classes=cfg["model"]["num_classes"])
    return (model if device is None else model.to(device)).eval()


def first_batches(x: torch.Tensor, y: torch.Tensor, batches: int, batch_size: int) -> list[Batch]:
    """The first `batches` batches of (x, y) in order (fewer when there are fewer images: all there are)."""
    n = min(len(x), batches * batch_size)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


class _Proxy(Evaluation):
    """What the two proxies share: settings `batches`, `batch_size`, `at_init`, `splits`; the split data; the jobs
    (key, model, split) in order; `estimate` (one batch's value and convergence flag) is each proxy's own."""

    needs_train = True

    def settings(self, cfg: Mapping[str, Any], where: str = "eval") -> Any:
        s = super().settings(cfg, where)
        if len(set(s.splits)) != len(s.splits):
            raise ConfigError(f"{where}.{self.name}.splits is {list(s.splits)}; expected distinct splits of train, test")
        return s

    def train_images(self, cfg: Mapping[str, Any]) -> int:
        s = self.settings(cfg)
        return s.batches * s.batch_size if "train" in s.splits else 0

    def _images(self, s: Any, n_test: int) -> int:
        """Images the proxy runs on: per split (test capped at `n_test`; the training set is taken to hold at least
        batches × batch_size images), twice with `at_init`."""
        per = s.batches * s.batch_size
        return sum(min(n_test, per) if sp == "test" else per for sp in s.splits) * (2 if s.at_init else 1)

    def estimate(self, model: Any, batch: Batch, generator: torch.Generator, s: Any) -> tuple[float, bool]:
        """(value, converged) of one batch."""
        raise NotImplementedError

    def _run(self, s: Any, jobs: Sequence[tuple[str, Any, str]], data: Mapping[str, Batch],
             gens: Mapping[str, torch.Generator]) -> tuple[dict[str, float], dict[str, float]]:
        """({key: mean over batches}, {key: share of batches converged}) of each job (key, model, split), in order."""
        from nares.proxies import over_batches

        values, converged = {}, {}
        for key, model, split in jobs:
            flags: list[bool] = []

            def one(batch: Batch, model: Any = model, split: str = split, flags: list[bool] = flags) -> float:
                value, ok = self.estimate(model, batch, gens[split], s)
                flags.append(ok)
                return value

            values[key] = over_batches(one, first_batches(*data[split], s.batches, s.batch_size))
            converged[key] = sum(flags) / len(flags)
        return values, converged

    def _splits(self, s: Any) -> list[str]:
        return [sp for sp in SPLIT_ORDER if sp in s.splits]

    def _data(self, ctx: EvalContext, split: str) -> Batch:
        x, y = (ctx.x, ctx.y) if split == "test" else (ctx.x_train, ctx.y_train)
        if x is None or y is None:
            from nares.proxies import ProxyError

            raise ProxyError(f"evaluation {self.name!r} has no {split} images (EvalContext.x{'' if split == 'test' else '_train'}"
                             f" is None); the evaluator loads them for evaluations that need them")
        return x, y

    def _generators(self, base: int, data: Mapping[str, Batch]) -> dict[str, torch.Generator]:
        return {sp: torch.Generator(device=x.device).manual_seed(split_seed(base, self.name, sp))
                for sp, (x, _) in data.items()}

    def _values(self, ctx: EvalContext) -> tuple[dict[str, float], dict[str, float]]:
        s = self.settings(ctx.cfg)
        base = int(ctx.cfg["eval"]["seed"])
        splits = self._splits(s)
        data = {sp: self._data(ctx, sp) for sp in splits}
        gens = self._generators(base, data)
        fresh = init_model(ctx.space, ctx.arch, ctx.cfg, _seed(base, self.name), data[splits[0]][0].device) \
            if s.at_init else None
        jobs = []
        for sp in splits:
            jobs.append((sp, ctx.model, sp))
            if fresh is not None:
                jobs.append((f"{sp}@init", fresh, sp))
        return self._run(s, jobs, data, gens)

    def init_values(self, cfg: Mapping[str, Any], model: Any, data: Mapping[str, Batch],
                    seed: int) -> tuple[dict[str, float], dict[str, float]]:
        """The values of `model`, an architecture at initialisation, alone: key "<split>@init" per split of the
        settings, each split's draws from `split_seed(seed, name, split)`; `data` holds (x, y) per split."""
        s = self.settings(cfg)
        splits = self._splits(s)
        missing = [sp for sp in splits if sp not in data]
        if missing:
            from nares.proxies import ProxyError

            raise ProxyError(f"evaluation {self.name!r} needs the {', '.join(missing)} images")
        data = {sp: data[sp] for sp in splits}
        return self._run(s, [(f"{sp}@init", model, sp) for sp in splits], data, self._generators(seed, data))


class JacobianNorm(_Proxy):
    """‖∂logits/∂x‖_F per image by `n_projections` random projections (unit-sphere directions scaled by √C:
    unbiased for ‖J‖²_F), mean over images and batches."""

    name = "jacobian"
    Settings = settings_class("JacobianSettings", n_projections=(int, rule(ge=1)), **_COMMON)
    units: ClassVar[Mapping[str, str]] = {"frobenius": "raw"}

    def cost(self, settings: Any, n_images: int) -> float:
        return self._images(settings, n_images) * settings.n_projections

    def estimate(self, model: Any, batch: Batch, generator: torch.Generator, s: Any) -> tuple[float, bool]:
        from nares.proxies import jacobian_frobenius

        return float(jacobian_frobenius(model, batch[0], n_projections=s.n_projections, generator=generator,
                                        reduction="mean")), True

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        return self._values(ctx)[0]

    def init_cell(self, cfg: Mapping[str, Any], model: Any, data: Mapping[str, Batch], seed: int) -> dict[str, Any]:
        return self.init_values(cfg, model, data, seed)[0]

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value("frobenius", k, float(v)) for k, v in cell.items()]


class HessianEigenvalue(_Proxy):
    """The dominant eigenvalue of each image's input Hessian of CE by power iteration on Hessian-vector products
    (`iterations` at most, relative tolerance `tol`), mean over images and batches; `converged` = the share of
    batches whose iteration converged."""

    name = "hessian"
    Settings = settings_class("HessianSettings", iterations=(int, rule(ge=1)), tol=(float, rule(gt=0)), **_COMMON)
    units: ClassVar[Mapping[str, str]] = {"top_eig": "raw", "converged": "raw"}

    def cost(self, settings: Any, n_images: int) -> float:
        return self._images(settings, n_images) * 2 * settings.iterations  # a Hessian-vector product ≈ two passes

    def estimate(self, model: Any, batch: Batch, generator: torch.Generator, s: Any) -> tuple[float, bool]:
        from nares.proxies import hessian_top_eigenvalue

        value, converged, _ = hessian_top_eigenvalue(model, *batch, iterations=s.iterations, tol=s.tol,
                                                     generator=generator)
        return value, converged

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        values, converged = self._values(ctx)
        return {"top_eig": values, "converged": converged}

    def init_cell(self, cfg: Mapping[str, Any], model: Any, data: Mapping[str, Batch], seed: int) -> dict[str, Any]:
        values, converged = self.init_values(cfg, model, data, seed)
        return {"top_eig": values, "converged": converged}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value(m, k, float(v)) for m in ("top_eig", "converged") for k, v in cell[m].items()]


PROXIES_AT_INIT: tuple[str, ...] = (JacobianNorm.name, HessianEigenvalue.name)  # evaluations with `init_cell`
