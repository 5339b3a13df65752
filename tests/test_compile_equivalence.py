"""torch.compile'd training step and attacks give the eager results within float tolerance (CPU, small model).

The compiled network is `nares.train.trainer.compile_net` / `nares.attacks.common.compiled`, the switches
`train.compile` and `eval.compile` of params.yaml. A signed-gradient step can flip where a gradient component
is ~0, so adversarial examples are compared by the share of pixels that differ and by how far (one step).
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from nares.attacks import evaluate_attacks, pgd
from nares.attacks.common import compiled
from nares.config import load_preset
from nares.train.optim import make_optimizer
from nares.train.trainer import compile_net, train_step
from tests.small_models import small_cnn

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                                   reason="torch.compile on CPU needs a C++ compiler")]


def _batch(seed: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _train(tr: dict, steps: int) -> tuple[list[float], list[torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = small_cnn(seed=0)
    net = compile_net(model, tr, torch.device("cpu"))
    assert (net is model) is not tr["compile"]
    opt = make_optimizer(model, tr)
    gen = torch.Generator().manual_seed(1)
    losses, logits = [], []
    for i in range(steps):
        x, y = _batch(i)
        loss, out = train_step(model, net, x, y, opt, tr, gen, None)
        losses.append(float(loss))
        logits.append(out)
    return losses, logits, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_compile_switches_are_off_by_default_and_cuda_graphs_only_on_cuda():
    cfg = load_preset("full")
    assert cfg["train"]["compile"] is False and cfg["train"]["cuda_graphs"] is False
    assert cfg["eval"]["compile"] is False and cfg["eval"]["cuda_graphs"] is False
    model = small_cnn()
    assert compile_net(model, cfg["train"], torch.device("cpu")) is model
    assert compiled(model, compile=False, cuda_graphs=True, device=torch.device("cuda")) is model
    net = compiled(model, compile=True, cuda_graphs=True, device=torch.device("cpu"))  # no CUDA graphs on CPU
    assert net is not model and net._orig_mod is model


def test_compiled_training_step_matches_eager():
    tr = copy.deepcopy(load_preset("tiny")["train"])
    tr.update(precision="fp32", channels_last=False)
    eager = _train({**tr, "compile": False}, steps=3)
    comp = _train({**tr, "compile": True}, steps=3)
    assert comp[0] == pytest.approx(eager[0], rel=1e-3, abs=1e-4)  # adversarial CE loss per step
    for a, b in zip(eager[1], comp[1], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
    for k, w in eager[2].items():
        torch.testing.assert_close(comp[2][k], w, rtol=1e-3, atol=1e-4, msg=f"weights {k} differ")
    assert any(not torch.equal(w, small_cnn(seed=0).state_dict()[k]) for k, w in comp[2].items())  # it trained


def test_compiled_attacks_match_eager():
    model = small_cnn(seed=3).eval()
    net = compiled(model, compile=True, device=torch.device("cpu"))
    x, y = _batch(7, n=32)
    eps, step = 8 / 255, 2 / 255
    kw = {"eps": eps, "step": step, "steps": 5, "init": "uniform"}
    a = pgd(model, x, y, generator=torch.Generator().manual_seed(0), **kw)
    b = pgd(net, x, y, generator=torch.Generator().manual_seed(0), **kw)
    diff = (a - b).abs()
    assert float(diff.max()) <= 2 * eps + 1e-6                       # both in the ball
    assert float((diff > 1e-5).float().mean()) < 0.01                # sign flips at ~0 gradients only
    section = load_preset("tiny")["eval"]
    names = ["clean", "pgd", "cw", "aa"]
    ea = evaluate_attacks(model, x, y, section, names=names, batch_size=16, precision="fp32", seed=0)
    ca = evaluate_attacks(net, x, y, section, names=names, batch_size=16, precision="fp32", seed=0)
    for name in names:
        assert abs(ca[name].acc - ea[name].acc) <= 1 / len(y) + 1e-9, name  # at most one point apart
        assert ca[name].loss == pytest.approx(ea[name].loss, rel=1e-2, abs=1e-3)
