"""`nares proxies --preset P [--space S] --archs SEL --out DIR [--evaluations jacobian hessian]`: the proxies of
PROTOCOL §7.2 at initialisation over a search space, no training needed.

Each selected architecture (an NB201 selection is replaced by its classes' representatives; a space too large to
enumerate takes `sample:N[@SEED]`, whose order gives the ids) is built freshly initialised from its own seed
(`nares.evaluations.proxies.arch_seed`), and each evaluation's `init_cell` runs on the first training images
(without augmentation) and test images of the preset: keys "train@init", "test@init". The values become long rows
(`nares.results`: checkpoint "init", the seed column holds the architecture's seed) written as Parquet shards
under DIR/results/ (`write_results`), one architecture at a time. Resumable: an architecture whose rows of every
requested evaluation are in DIR at the current version and settings hash is skipped; rows of other evaluations
of an architecture are kept when it is rewritten. One process per DIR.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxies", help="the Jacobian and Hessian proxies at initialisation over a search space "
                                       "(no training), as long result rows")
    p.add_argument("--preset", default="full", help="preset of params.yaml (default: full)")
    p.add_argument("--space", help="search space (default: the preset's; another name builds that space at its "
                                   "defaults, at the preset's model.width_base)")
    p.add_argument("--archs", required=True, help="all | ids:A-B | list:ARCH,... | sample:N[@SEED]")
    p.add_argument("--out", required=True, type=Path, help="folder of the results table (DIR/results/part-*.parquet)")
    p.add_argument("--evaluations", nargs="+", metavar="E", help="evaluations with an at-initialisation form "
                                                                 "(default: jacobian hessian)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 is fastest on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no line per architecture")
    p.set_defaults(func=_proxies)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def preset_with_space(cfg: dict[str, Any], name: str | None) -> dict[str, Any]:
    """`cfg` itself when `name` is None or its space's name; else a copy whose space section is `{name: name}`."""
    if name is None or name == (cfg.get("space") or {}).get("name", "wrn"):
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg["space"] = {"name": name}
    return cfg


def init_settings_hash(cfg: dict[str, Any], evaluation: str) -> str:
    """The settings hash of at-initialisation rows: the evaluation's own (model, test data, its section, the shared
    eval keys, the space) plus what picks the training images (train source, limit, hold-out and its seed)."""
    from nares.config import preset_hash
    from nares.train.runtime import evaluation_hash

    train_data = {k: cfg["data"].get(k) for k in ("train", "train_limit", "val", "val_holdout")}
    return preset_hash({"evaluation": evaluation_hash(cfg, evaluation), "train_data": train_data,
                        "holdout_seed": cfg["train"]["seed"], "checkpoint": "init"})


def _check_evaluations(names: list[str], cfg: dict[str, Any]) -> list:
    from nares.errors import ConfigError
    from nares.evaluations import get_evaluation
    from nares.evaluations.proxies import PROXIES_AT_INIT

    if len(set(names)) != len(names):
        raise ConfigError(f"--evaluations {' '.join(names)} names an evaluation twice")
    out = []
    for name in names:
        ev = get_evaluation(name)  # an unknown name: one line listing the known ones
        if name not in PROXIES_AT_INIT:
            raise ConfigError(f"--evaluations: {name!r} has no at-initialisation form (choose from "
                              f"{', '.join(PROXIES_AT_INIT)})")
        ev.settings(cfg)  # a bad setting: one line before any work
        out.append(ev)
    return out


def _data(cfg: dict[str, Any], evaluations: list, device) -> dict[str, tuple]:
    """{split: (x, y)}: the first images of each split any evaluation reads, on `device`, float in [0, 1]."""
    from nares.data import load_splits
    from nares.train.validate import as_tensors

    need: dict[str, int] = {}
    for ev in evaluations:
        s = ev.settings(cfg)
        for split in s.splits:
            need[split] = max(need.get(split, 0), s.batches * s.batch_size)
    splits = load_splits(cfg["data"], seed=cfg["train"]["seed"])
    out = {}
    for split, n in need.items():
        images = getattr(splits, split)
        out[split] = as_tensors(images.head(min(n, len(images))), device)
    return out


def _done(existing, space_name: str, keys: dict[str, tuple[int, str]]) -> set[tuple[int, str]]:
    """(arch_id, arch) pairs whose rows of every (evaluation: (version, settings hash)) of `keys` are stored."""
    from nares.evaluations.proxies import INIT
    from nares.results.run import DEFAULT_DATASET

    seen: dict[tuple[int, str], set[str]] = {}
    cols = ("dataset", "space", "arch_id", "arch", "checkpoint", "evaluation", "version", "settings_hash")
    rows = zip(*(existing.column(c).to_pylist() for c in cols), strict=True) if existing.num_rows else ()
    for dataset, space, arch_id, arch, checkpoint, evaluation, version, settings_hash in rows:
        if (dataset == DEFAULT_DATASET and space == space_name and checkpoint == INIT and evaluation in keys
                and keys[evaluation] == (version, settings_hash)):
            seen.setdefault((arch_id, arch), set()).add(evaluation)
    return {k for k, found in seen.items() if found == set(keys)}


def _kept(existing, space_name: str, arch_id: int, replaced: set[str]):
    """The stored rows of one architecture that its rewrite keeps (all but the init rows of `replaced`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from nares.evaluations.proxies import INIT
    from nares.results.run import DEFAULT_DATASET

    if existing.num_rows == 0:
        return existing

    def text(c: str):
        col = existing.column(c)
        return col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col

    mine = pc.and_(pc.and_(pc.equal(existing.column("arch_id"), arch_id), pc.equal(text("space"), space_name)),
                   pc.equal(text("dataset"), DEFAULT_DATASET))
    drop = pc.and_(pc.equal(text("checkpoint"), INIT), pc.is_in(text("evaluation"), value_set=pa.array(sorted(replaced))))
    return existing.filter(pc.and_(mine, pc.invert(drop)))


def _proxies(args: argparse.Namespace) -> int:
    from nares.config import load_preset
    from nares.evaluations.proxies import INIT, PROXIES_AT_INIT, arch_seed, init_model
    from nares.results.build import LongBuilder, concat
    from nares.results.run import DEFAULT_DATASET
    from nares.results.store import read_results, write_results
    from nares.spaces import space_for
    from nares.sweep.selection import select_archs
    from nares.train.runtime import Stopwatch, code_version, resolve_device, set_threads

    cfg = preset_with_space(load_preset(args.preset), args.space)
    space = space_for(cfg)  # an unknown space: one line before any work
    evaluations = _check_evaluations(list(args.evaluations or PROXIES_AT_INIT), cfg)
    pairs = select_archs(args.archs, space)  # a bad selection: one line before any work
    set_threads(args.threads)
    dev = resolve_device(args.device)
    keys = {ev.name: (ev.version(cfg), init_settings_hash(cfg, ev.name)) for ev in evaluations}
    args.out.mkdir(parents=True, exist_ok=True)
    existing = read_results(args.out)
    done = _done(existing, space.name, keys)
    todo = [(i, a) for i, a in pairs if (i, space.format(a)) not in done]
    data = _data(cfg, evaluations, dev) if todo else {}
    for k, (arch_id, arch) in enumerate(todo, 1):
        arch_s, seed = space.format(arch), arch_seed(cfg, space, arch)
        model = init_model(space, arch, cfg, seed, dev)
        b = LongBuilder()
        shown = []
        for ev in evaluations:
            watch = Stopwatch(dev)
            with watch.running():
                vals = ev.values(ev.init_cell(cfg, model, data, seed))
            b.add(len(vals), [v.value for v in vals], dataset=DEFAULT_DATASET, space=space.name, arch_id=arch_id,
                  arch=arch_s, seed=seed, checkpoint=INIT, evaluation=ev.name, version=keys[ev.name][0],
                  settings_hash=keys[ev.name][1], metric=[v.metric for v in vals], key=[v.key for v in vals],
                  device=watch.device_name, device_seconds=watch.device_seconds, timestamp=_now(),
                  code_version=code_version())
            shown += [f"{ev.name} {v.metric} {v.key} {v.value:.4g}" for v in vals if v.metric != "converged"]
        write_results(concat([_kept(existing, space.name, arch_id, set(keys)), b.table()]), args.out)
        if not args.quiet:
            print(f"[{k}/{len(todo)}] {arch_id} {arch_s}: {'; '.join(shown)}", flush=True)
    print(f"{space.name}: {len(todo)} architecture(s) computed, {len(pairs) - len(todo)} already in {args.out}")
    return 0
