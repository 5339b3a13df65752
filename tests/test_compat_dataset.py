"""nares.compat as a drop-in for the official `dataset.py`/`search_space.py`, driven the way the official
optimizers and `nas_benchmark.py` drive them (every call they make, with their argument types; written
from PROTOCOL §9), on a published-layout jsonl and on a release folder; and the published NAS variant
queries exactly what those optimizers query."""

from __future__ import annotations

import dataclasses
import datetime
import json
import random
import sys
import types

import numpy as np
import orjson
import pytest

from nares.api import open_dataset
from nares.nas import published
from nares.nas.runner import objective_by_code
from nares.records import write_jsonl
from nares.spaces.wrn import SPACE, all_archs, neighbours, one_hot
from nares.store.tables import records_to_tables, write_tables
from nares.synthetic import synthetic_records


@pytest.fixture(scope="module")
def official_names():
    """`import dataset` / `import search_space` resolve to nares.compat (the README's two-line alias)."""
    import nares.compat.dataset
    import nares.compat.search_space

    saved = {k: sys.modules.get(k) for k in ("dataset", "search_space")}
    sys.modules["dataset"], sys.modules["search_space"] = nares.compat.dataset, nares.compat.search_space
    yield
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NARES_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def small(tmp_path_factory, cache):
    recs = synthetic_records(archs=all_archs()[::700], epochs=4, seed=2)
    rng = np.random.default_rng(1)
    for r in recs:
        for cells in r["test_best"][0]["corruptions"].values():
            for cell in cells.values():
                cell["acc"] = round(float(rng.uniform(10, 90)), 2)
    path = tmp_path_factory.mktemp("small") / "cifar10.jsonl"
    write_jsonl(path, recs)
    return path, recs


@pytest.fixture(scope="module")
def full(tmp_path_factory, cache):
    path = tmp_path_factory.mktemp("full") / "cifar10.jsonl"
    write_jsonl(path, synthetic_records(epochs=2, corruptions=False, seed=1))
    return path


# ---------------------------------------------------------------- optimizers written from PROTOCOL §9


class MetaOptimizer:
    """What every official optimizer does with the dataset: Metric[name], get_objective, a dict of
    sampled architectures, distinct queries counted, get_topk_archs with ties latest first."""

    def __init__(self, config, dataset):
        from dataset import Metric

        self.dataset, self.search_space = dataset, dataset.search_space
        self.objective_metric = Metric[config.objective_metric]
        self.total_queries, self.queries, self.sampled_archs = config.total_queries, 0, {}

    def query_metric(self, arch):
        if arch not in self.sampled_archs:
            self.sampled_archs[arch] = self.dataset.get_objective(arch, self.objective_metric)
            self.queries += 1
        return self.sampled_archs[arch]

    def get_topk_archs(self, k=5):
        return [a for a, _ in sorted(self.sampled_archs.items(), key=lambda x: x[1])[::-1][:k]]


class RandomSearch(MetaOptimizer):
    def run(self):
        while self.queries < self.total_queries:
            arch = self.search_space.sample_arch()
            if arch not in self.sampled_archs:
                self.query_metric(arch)


class LocalSearch(MetaOptimizer):
    def run(self):
        while self.queries < self.total_queries and not self._round():
            pass

    def _round(self):
        best, best_v, n = None, None, 0
        while n < 10:
            arch = self.search_space.sample_arch()
            if arch not in self.sampled_archs:
                v, n = self.query_metric(arch), n + 1
                if best is None or v > best_v:
                    best, best_v = arch, v
                if self.queries >= self.total_queries:
                    return True
        while True:
            moved = False
            for nb in self.search_space.get_neighbors(best, shuffle=True):
                if nb not in self.sampled_archs:
                    v = self.query_metric(nb)
                    if bool(v > best_v) - bool(v < best_v):  # -1/0/1 tested for truth
                        best, best_v, moved = nb, v, True
                        break
                    if self.queries >= self.total_queries:
                        return True
            if not moved:
                return False


class RegularizedEvolution(MetaOptimizer):
    def run(self):
        pop = self.search_space.sample_archs(30)
        vals = [self.query_metric(a) for a in pop]
        born, it = [0] * 30, 0
        while self.queries < self.total_queries:
            it += 1
            picks = np.random.choice(len(vals), 10)
            parent = pop[picks[np.argmax([vals[i] for i in picks])]]
            if random.random() < 1.0:
                child = self.search_space.get_random_neighbor(parent)
                old = np.argmin(born)
                pop[old], vals[old], born[old] = child, self.query_metric(child), it


class BananasCalls(MetaOptimizer):
    """BANANAS' calls on the dataset and codec (its predictor replaced by noise: only the calls matter)."""

    def run(self):
        from search_space import OneHotCodec

        codec = OneHotCodec(self.search_space)
        for arch in self.search_space.sample_archs(10):
            self.query_metric(arch)
        while self.queries < self.total_queries:
            x = np.stack([codec.encode(a) for a in self.sampled_archs], axis=0)
            y = np.array([100 - m for m in self.sampled_archs.values()])
            assert x.shape == (len(y), 30) and x.dtype == np.int32
            cand = [n for a in self.get_topk_archs(50)[:10] for n in
                    (self.search_space.get_random_neighbor(a) for _ in range(10)) if n not in self.sampled_archs]
            xc = np.stack([codec.encode(a) for a in cand], dtype=np.float32)
            for i in np.argsort(np.random.normal(np.zeros(len(cand)), 1.0))[:10]:
                self.query_metric(codec.decode(xc[i]))


class EnhancedJSONEncoder(json.JSONEncoder):  # nas_benchmark.py's results.json writer
    def default(self, o):
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, datetime.date):
            return o.isoformat()
        return super().default(o)


def _search(cls, dataset, seed, budget=500):
    random.seed(seed)
    np.random.seed(seed)
    cfg = types.SimpleNamespace(objective_metric="VAL_PGD_ACC", objective_direction="max", total_queries=budget)
    opt = cls(cfg, dataset)
    opt.run()
    return opt


# ---------------------------------------------------------------- tests


@pytest.mark.slow
def test_official_optimizers_run_unchanged_and_the_published_variant_matches_them(official_names, full, tmp_path):
    from dataset import Metric, NASBenchR_CIFAR10_Dataset

    dataset = NASBenchR_CIFAR10_Dataset(str(full))
    values = objective_by_code(open_dataset(full), "VAL_PGD_ACC")
    for cls, name in ((RandomSearch, "random_search"), (LocalSearch, "local_search"),
                      (RegularizedEvolution, "regularized_evolution")):
        for seed in (0, 3):
            opt = _search(cls, dataset, seed)
            records = list(dataset.batch_query(opt.get_topk_archs(5)))  # nas_benchmark.search
            for record in records:  # nas_benchmark.print_record
                line = (f"{record.arch_id}: val clean acc: {dataset.get_metric(record, Metric.VAL_CLEAN_ACC):.2f} "
                        f"val pgd acc: {dataset.get_metric(record, Metric.VAL_PGD_ACC):.2f} "
                        f"test pgd acc: {dataset.get_metric(record, Metric.TEST_PGD_ACC):.2f}")
                assert line.startswith(f"{record.arch_id}: val clean acc: ")
            dumped = json.loads(json.dumps(records, cls=EnhancedJSONEncoder, indent=4))
            assert dumped[0]["arch_id"] == records[0].arch_id and "train_records" in dumped[0]
            run = published.run_one(name, values, 500, seed, published.PUBLISHED_SETTINGS[name])
            assert [SPACE.arch_of_code(c).to_tuple() for c in run.codes] == [a.to_tuple() for a in opt.sampled_archs], (name, seed)
            assert SPACE.arch_of_code(run.best_code).to_tuple() == opt.get_topk_archs(1)[0].to_tuple()
            if name == "local_search":
                assert run.queries > 500  # no budget check after a move: the walk runs past the budget
    opt = _search(BananasCalls, dataset, 1, budget=40)
    assert 40 <= opt.queries < 50


def test_api_types_values_and_rules(official_names, small):
    from dataset import Metric, NASBenchR_CIFAR10_Dataset
    from search_space import Arch, IntCodec, OneHotCodec, WRNSearchSpace

    path, recs = small
    ds = NASBenchR_CIFAR10_Dataset(str(path))
    core = open_dataset(path)
    assert ds.name == "NASBenchR_CIFAR10" and isinstance(ds.search_space, WRNSearchSpace)
    assert Metric("val_pgd_acc") is Metric.VAL_PGD_ACC and Metric["VAL_PGD_ACC"] is Metric.VAL_PGD_ACC
    assert Metric.VAL_TEST_ACC.value == "val_test_acc" and Metric.TEST_FGSM_STABLE not in ds.test_metrics
    r0 = recs[0]
    arch = Arch.from_tuple(tuple(r0["arch"][k] for k in ("D1", "W1", "D2", "W2", "D3", "W3")))
    rec = ds.query(arch)
    assert rec.arch_id == r0["arch_id"] and rec.arch == arch and rec.macs == r0["MACs"] and rec.params == r0["Params"]
    tr = rec.train_records[0]
    assert tr.timestamp == datetime.date.fromisoformat(r0["train"][0]["timestamp"])
    assert tr.history.val_pgd_acc == r0["train"][0]["pgd"] and tr.attack[0].Linf_aa_acc == r0["test_best"][0]["Linf_aa_acc"]
    gen = ds.batch_query([arch, arch])
    assert isinstance(gen, types.GeneratorType) and [r.arch_id for r in gen] == [r0["arch_id"]] * 2
    be = ds.get_metric(rec, Metric.BEST_EPOCH)
    assert isinstance(be, np.floating) and be == r0["train"][0]["best_epoch"]
    assert ds.get_metric(rec, "val_pgd_acc") == core.metric(r0["arch_id"], "VAL_PGD_ACC")
    for m in (Metric.VAL_LOSS, Metric.VAL_TEST_ACC):
        with pytest.raises(ValueError, match="Invalid metric"):
            ds.get_metric(rec, m)
        with pytest.raises(ValueError):
            ds.get_objective(arch, m)
    with pytest.raises(ValueError):
        ds.get_metric(rec, "VAL_PGD_ACC")  # official string values are lower case
    assert ds.get_objective(arch, Metric.TEST_FGSM_STABLE) == r0["test_best"][0]["Linf_fgsm_stable"]  # not refused
    for m in ds.test_metrics:
        with pytest.raises(ValueError, match="only available at test stage"):
            ds.get_objective(arch, m)
    for m in Metric:
        if m not in (Metric.VAL_LOSS, Metric.VAL_TEST_ACC):
            got = ds.get_metric(rec, m)
            if m.name in ("MACS", "PARAMS"):
                assert got == core.metric(r0["arch_id"], m.name)
            else:
                assert got == core.metric(r0["arch_id"], m.name) and isinstance(got, np.floating), m
    # TEST_CORRUPT_ACC: mean over severities of the mean over corruptions, as the official class computes it
    for r in recs:
        a = Arch(*(r["arch"][k] for k in ("D1", "W1", "D2", "W2", "D3", "W3")))
        grid = np.array([[c[s]["acc"] for s in "12345"] for c in r["test_best"][0]["corruptions"].values()])
        assert ds.get_metric(ds.query(a), Metric.TEST_CORRUPT_ACC) == np.mean(grid.mean(axis=0).tolist())
    # .dataset: the Arch → Record mapping (keys usable with query)
    keys = list(ds.dataset.keys())
    assert len(keys) == len(ds.dataset) == len(recs) and keys[0] in ds.dataset and ds.dataset[keys[0]].arch_id == recs[0]["arch_id"]
    with pytest.raises(KeyError):
        ds.query(Arch(11, 16, 11, 16, 11, 16))
    # search space: value order, neighbour order, iteration order and one-hot layout
    space = ds.search_space
    it = list(space.get_arch_iterator())
    assert [a.to_tuple() for a in it] == [a.to_tuple() for a in all_archs()]
    assert [n.to_tuple() for n in space.get_neighbors(arch)] == [n.to_tuple() for n in neighbours(arch)]
    random.seed(4)
    s = space.sample_archs(3)
    random.seed(4)
    assert s == [space.sample_arch() for _ in range(3)] and len(space.get_neighbors(arch, shuffle=True)) == 24
    nb = space.get_random_neighbor(arch)
    assert sum(x != y for x, y in zip(nb.to_tuple(), arch.to_tuple(), strict=True)) == 1
    oh, ic = OneHotCodec(space), IntCodec(space)
    for a in it[::997]:
        assert oh.encode(a).tolist() == one_hot(a) and oh.decode(oh.encode(a).astype(np.float32)) == a
        assert ic.decode(ic.encode(a)) == a
    assert hash(arch) == hash(arch.to_tuple()) and {arch: 1}[Arch(*arch.to_tuple())] == 1


def test_official_style_arch_objects_and_integer_counts(official_names, small, tmp_path):
    from dataset import Metric, NASBenchR_CIFAR10_Dataset

    path, recs = small

    @dataclasses.dataclass
    class OfficialArch:  # the official Arch: a plain dataclass with to_tuple
        depth1: int
        width1: int
        depth2: int
        width2: int
        depth3: int
        width3: int

        def to_tuple(self):
            return (self.depth1, self.width1, self.depth2, self.width2, self.depth3, self.width3)

        def __hash__(self):
            return hash(self.to_tuple())

    a = OfficialArch(*(recs[1]["arch"][k] for k in ("D1", "W1", "D2", "W2", "D3", "W3")))
    assert NASBenchR_CIFAR10_Dataset(str(path)).query(a).arch_id == recs[1]["arch_id"]
    assert open_dataset(path).query(a) == recs[1]  # the core API takes it too
    ints = tmp_path / "ints.jsonl"
    rows = []
    for r in recs:
        r = dict(r, MACs=round(r["MACs"] * 1e6), Params=round(r["Params"] * 1e6))
        rows.append(orjson.dumps(r))
    ints.write_bytes(b"\n".join(rows) + b"\n")
    ds = NASBenchR_CIFAR10_Dataset(str(ints))
    rec = ds.query(a)
    assert rec.macs == round(recs[1]["MACs"] * 1e6) and isinstance(rec.macs, int)
    assert ds.get_metric(rec, Metric.PARAMS) == round(recs[1]["Params"] * 1e6)


def test_a_release_folder_serves_the_official_api(official_names, small, tmp_path):
    from dataset import Metric, NASBenchR_CIFAR10_Dataset

    _, recs = small
    write_tables(records_to_tables(recs), tmp_path / "release" / "tables")
    ds = NASBenchR_CIFAR10_Dataset(str(tmp_path / "release"))
    jsonl_ds = NASBenchR_CIFAR10_Dataset(str(small[0]))
    for arch in jsonl_ds.dataset:
        a, b = ds.query(arch), jsonl_ds.query(arch)
        assert dataclasses.asdict(a) == dataclasses.asdict(b)
        for m in Metric:
            if m not in (Metric.VAL_LOSS, Metric.VAL_TEST_ACC):
                assert ds.get_metric(a, m) == jsonl_ds.get_metric(b, m), m
