"""The FSP distance of RobNets (PROTOCOL §7.4): the library against its definition written out as loops, the rule
per search space of which modules are blocks, and the `fsp` evaluation against a direct computation (its PGD-20
inputs drawn from the evaluation's own generator, each block's input and output read by running the network by
hand)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks.pgd import pgd
from nares.attacks.suite import _attack_seed
from nares.config import load_preset
from nares.errors import ConfigError
from nares.evaluations import EvalContext, Value, get_evaluation
from nares.evaluations.fsp import FSPDistance, fsp_blocks, register_fsp_blocks
from nares.models.layers import PreActBlock
from nares.models.nb201 import Cell as NB201Cell
from nares.models.nb201 import ResidualReduction
from nares.proxies import fsp_distance, fsp_matrix, fsp_matrix_distance
from nares.spaces import get_space, space_for

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the library against the definition


def _g_by_definition(f_in: torch.Tensor, f_out: torch.Tensor) -> list[list[list[float]]]:
    """G_b[i][j] = Σ_{s,t} F_in[b, i, s, t] · F_out[b, j, s, t] / (h·w), summed term by term in Python floats."""
    b, m, h, w = f_in.shape
    n = f_out.shape[1]
    return [[[sum(float(f_in[k, i, s, t]) * float(f_out[k, j, s, t]) for s in range(h) for t in range(w)) / (h * w)
              for j in range(n)] for i in range(m)] for k in range(b)]


def test_fsp_matrix_and_distance_are_the_definition():
    f_in = torch.randn(3, 4, 2, 3, generator=_gen(0), dtype=torch.float64)
    f_out = torch.randn(3, 5, 2, 3, generator=_gen(1), dtype=torch.float64)
    f_out_adv = f_out + 0.1 * torch.randn(f_out.shape, generator=_gen(2), dtype=torch.float64)
    f_in_adv = f_in - 0.2 * torch.randn(f_in.shape, generator=_gen(3), dtype=torch.float64)
    g, g_adv = _g_by_definition(f_in, f_out), _g_by_definition(f_in_adv, f_out_adv)
    assert torch.allclose(fsp_matrix(f_in, f_out), torch.tensor(g, dtype=torch.float64), rtol=0, atol=1e-12)
    # (1/N) Σ_x ‖G(x) − G(x̂)‖²₂ with ‖·‖₂ the entrywise (Frobenius) norm of the m×n matrix
    want = sum((g[k][i][j] - g_adv[k][i][j]) ** 2 for k in range(3) for i in range(4) for j in range(5)) / 3
    got = fsp_matrix_distance(fsp_matrix(f_in, f_out), fsp_matrix(f_in_adv, f_out_adv))
    assert got == pytest.approx(want, rel=1e-12)


def test_fsp_distance_hooks_one_forward_of_both_batches():
    """A block that doubles its input: F_out = 2·F_in, so G = 2·F_inᵀF_in/(hw) per sample, known in closed form."""

    class Double(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

    block = Double()
    model = nn.Sequential(block, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)  # 1 sample, 2 channels, 1×2
    x_adv = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]], dtype=torch.float64)
    # G(x) = 2/2 · [[1, 0], [0, 1]]; G(x̂) = 2/2 · [[2, 1], [1, 1]]; ‖ΔG‖² = 1 + 1 + 1 + 0 = 3
    assert fsp_distance(model, [block], x, x_adv) == [pytest.approx(3.0, abs=1e-12)]


# ---------------------------------------------------------------- which modules are blocks


def test_block_rule_per_built_in_space():
    wrn = get_space("wrn")
    arch = wrn.parse("4-8-5-8-4-8")
    model = wrn.build_model(arch, 1)
    blocks = fsp_blocks(wrn, model)
    assert blocks == [*model.stage1, *model.stage2, *model.stage3] and len(blocks) == 13
    assert all(isinstance(b, PreActBlock) for b in blocks)

    nb201 = space_for(load_preset("nb201-tiny"))
    cell = nb201.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    net = nb201.build_model(cell, 4)
    blocks = fsp_blocks(nb201, net)
    assert blocks == [m for m in net.cells if isinstance(m, NB201Cell)] and len(blocks) == 3  # one cell per stage
    assert not any(isinstance(b, ResidualReduction) for b in blocks)

    robnet = get_space("robnet")
    arch = robnet.sample(1, 0)[0]
    net = robnet.build_model(arch, 4)
    assert fsp_blocks(robnet, net) == list(net.cells) and len(net.cells) == 20  # reduction cells included

    class Compiled(nn.Module):  # what torch.compile returns: the eager module as `_orig_mod`
        def __init__(self, inner: nn.Module):
            super().__init__()
            self._orig_mod = inner

    assert fsp_blocks(robnet, Compiled(net)) == list(net.cells)


def test_block_rule_of_other_spaces(monkeypatch):
    import nares.evaluations.fsp as fsp_module

    monkeypatch.setattr(fsp_module, "_RULES", dict(fsp_module._RULES))  # the rules registered here end with the test
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))

    class Toy:
        name = "toy-fsp"

    with pytest.raises(ConfigError, match=r"^search space 'toy-fsp' names no FSP blocks: define fsp_blocks"):
        fsp_blocks(Toy(), model)
    register_fsp_blocks("toy-fsp", lambda m: [m[0], m[2]])
    assert fsp_blocks(Toy(), model) == [model[0], model[2]]

    class Own(Toy):
        def fsp_blocks(self, m: nn.Module) -> list[nn.Module]:  # the space's own rule comes first
            return [m[2]]

    assert fsp_blocks(Own(), model) == [model[2]]
    register_fsp_blocks("toy-fsp", lambda m: [])
    with pytest.raises(ConfigError, match="finds no block"):
        fsp_blocks(Toy(), model)


# ---------------------------------------------------------------- the evaluation


def _wrn_features(model: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) of each pre-activation block, by running the WRN by hand."""
    out, pairs = model.conv1(x), []
    for block in (*model.stage1, *model.stage2, *model.stage3):
        inp, out = out, block(out)
        pairs.append((inp, out))
    return pairs


def _pool_to_common(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    return F.adaptive_avg_pool2d(a, size), F.adaptive_avg_pool2d(b, size)


@pytest.fixture(scope="module")
def tiny():
    cfg = copy.deepcopy(load_preset("tiny"))
    cfg["eval"]["pgd"].update(steps=2, step_255=4)
    cfg["eval"]["fsp"] = {"n_images": 5, "batch_size": 2}  # three batches, the last one partial
    return cfg


def test_fsp_evaluation_equals_a_direct_computation(tiny):
    space = get_space("wrn")
    arch = space.parse("4-8-4-8-4-8")
    torch.manual_seed(0)
    model = space.build_model(arch, 1).eval()
    x = torch.rand(7, 3, 32, 32, generator=_gen(5))
    y = torch.randint(0, 10, (7,), generator=_gen(6))
    ev = get_evaluation("fsp")
    assert isinstance(ev, FSPDistance)
    cell = ev.cell(EvalContext(cfg=tiny, model=model, x=x, y=y, arch=arch, space=space))

    g = _gen(_attack_seed(tiny["eval"]["seed"], "fsp"))  # the evaluation's own PGD-20 draws, batch after batch
    sums = [0.0] * 12
    with torch.no_grad():
        for i in range(0, 5, 2):
            xb, yb = x[i:min(5, i + 2)], y[i:min(5, i + 2)]
            with torch.enable_grad():
                x_adv = pgd(model, xb, yb, eps=8 / 255, step=4 / 255, steps=2, init="uniform", generator=g)
            for k, ((a, b), (a_adv, b_adv)) in enumerate(zip(_wrn_features(model, xb), _wrn_features(model, x_adv),
                                                             strict=True)):
                a, b = _pool_to_common(a, b)
                a_adv, b_adv = _pool_to_common(a_adv, b_adv)
                hw = a.shape[2] * a.shape[3]
                g_clean = torch.einsum("kmhw,knhw->kmn", a.double(), b.double()) / hw
                g_adv = torch.einsum("kmhw,knhw->kmn", a_adv.double(), b_adv.double()) / hw
                sums[k] += float((g_clean - g_adv).pow(2).sum())
    want = [s / 5 for s in sums]
    assert cell["n"] == 5 and len(cell["blocks"]) == 12 and all(d > 0 for d in cell["blocks"])
    assert cell["blocks"] == pytest.approx(want, rel=1e-4)
    assert cell["mean"] == pytest.approx(sum(cell["blocks"]) / 12, rel=1e-12)
    vals = ev.values(cell)
    assert [v.key for v in vals] == [*(str(k) for k in range(12)), "mean"]
    assert vals[-1] == Value("distance", "mean", cell["mean"]) and {v.metric for v in vals} == {"distance"}
    assert ev.units == {"distance": "raw"}


@pytest.mark.parametrize("preset, arch", [
    ("nb201-tiny", "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"),
    ("robnet-tiny", None),
])
def test_fsp_evaluation_on_cell_spaces(tiny, preset, arch):
    """One value per cell, each the distance of that cell's input and output (checked through the hooks on the
    same adversarial images)."""
    cfg = copy.deepcopy(load_preset(preset))
    cfg["eval"]["pgd"].update(steps=1, step_255=8)
    cfg["eval"]["fsp"] = {"n_images": 2, "batch_size": 2}
    space = space_for(cfg)
    a = space.parse(arch) if arch else space.sample(1, 3)[0]
    torch.manual_seed(1)
    model = space.build_model(a, cfg["model"]["width_base"]).eval()
    x = torch.rand(2, 3, 32, 32, generator=_gen(7))
    y = torch.tensor([1, 4])
    cell = get_evaluation("fsp").cell(EvalContext(cfg=cfg, model=model, x=x, y=y, arch=a, space=space))
    blocks = fsp_blocks(space, model)
    x_adv = pgd(model, x, y, eps=8 / 255, step=8 / 255, steps=1, init="uniform",
                generator=_gen(_attack_seed(cfg["eval"]["seed"], "fsp")))
    assert len(cell["blocks"]) == len(blocks) == (3 if preset == "nb201-tiny" else 5)  # robnet-tiny: 5 cells
    assert cell["blocks"] == pytest.approx(fsp_distance(model, blocks, x, x_adv), rel=1e-6, abs=1e-12)
    assert any(d > 0 for d in cell["blocks"])


def test_fsp_cost_and_settings():
    """PGD steps of `eval.pgd` plus a clean and an adversarial forward per image, on min(N, test images)."""
    ev = get_evaluation("fsp")
    full = load_preset("full")
    s = ev.settings(full)
    assert (s.n_images, s.batch_size, s.pgd.steps, s.pgd.step_255, s.pgd.eps_255, s.pgd.init) == (
        1000, 100, 20, 0.8, 8.0, "uniform")  # the pgd evaluation's own settings
    assert ev.cost(s, 10_000) == pytest.approx(1000 * (20 + 2 / 3))
    assert ev.cost(s, 600) == pytest.approx(600 * (20 + 2 / 3))
    tiny = load_preset("tiny")
    assert ev.cost(ev.settings(tiny), 256) == pytest.approx(64 * (20 + 2 / 3))
    bad = copy.deepcopy(tiny)
    bad["eval"]["fsp"]["n_images"] = 0
    with pytest.raises(ConfigError, match=r"^eval\.fsp\.n_images is 0; expected an integer >= 1$"):
        ev.settings(bad)


def test_fsp_is_in_the_robnet_suite():
    from nares.evaluations import suite, suites

    for preset in ("full", "tiny", "robnet-tiny"):
        cfg = load_preset(preset)
        assert [name for name, members in suites(cfg).items() if "fsp" in members] == ["robnet"]
        assert suite(cfg, "robnet")[-1] == "fsp"  # the suite loads: every member's settings check
