"""Training-free proxies (PROTOCOL §7.2, §7.4) against exact values on tiny float64 models: the input-Jacobian
Frobenius norm, the dominant eigenvalue of the CE input Hessian, the FSP matrix and distance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nares.proxies import (
    ProxyError,
    fsp_distance,
    fsp_matrix,
    fsp_matrix_distance,
    hessian_top_eigenvalue,
    hessian_top_eigenvalues,
    jacobian_frobenius,
    jacobian_frobenius_exact,
    over_batches,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SHAPE = (3, 4, 4)
D = 48


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def _conv(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                         nn.Softplus(), nn.Flatten(), nn.Linear(16, 3)).double()


def _linear(w: torch.Tensor) -> nn.Module:
    lin = nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.normal_()
    return nn.Sequential(nn.Flatten(), lin)


def _x(b: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, *SHAPE, generator=_gen(seed), dtype=torch.float64)


def _exact_eig(h: torch.Tensor) -> float:
    """The eigenvalue of largest magnitude of a symmetric matrix."""
    ev = torch.linalg.eigvalsh(h)
    return float(ev[ev.abs().argmax()])


def _sample_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    def loss(flat: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(flat.view(1, *SHAPE)), y.view(1))

    return torch.autograd.functional.hessian(loss, x.flatten())


# ---------------------------------------------------------------- Jacobian


def test_linear_model_jacobian_norm_is_the_weight_norm():
    w = torch.randn(5, D, generator=_gen(2), dtype=torch.float64)
    model = _linear(w)
    assert torch.allclose(jacobian_frobenius_exact(model, _x(3)), w.norm().expand(3), rtol=1e-12)
    # orthogonal rows: ‖vᵀW‖² = Σ v_i² ‖w_i‖²; equal row norms make every sphere draw exact (‖v‖² = C),
    # any row norms make every Rademacher draw exact (v_i² = 1)
    q, _ = torch.linalg.qr(torch.randn(D, 5, generator=_gen(3), dtype=torch.float64))
    scales = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5], dtype=torch.float64)
    for rows, dist in ((q.T * 2.0, "sphere"), (q.T * scales[:, None], "rademacher")):
        got = jacobian_frobenius(_linear(rows), _x(4), n_projections=1, generator=_gen(4), distribution=dist)
        assert torch.allclose(got, rows.norm().expand(4), rtol=1e-12), dist


@pytest.mark.parametrize("make", [_mlp, _conv])
def test_many_projections_approach_the_exact_norm(make):
    model, x = make(), _x(2)
    exact = jacobian_frobenius_exact(model, x)
    est = jacobian_frobenius(model, x, n_projections=2000, generator=_gen(0))
    assert est.shape == (2,) and torch.allclose(est, exact, rtol=0.03)
    mean = jacobian_frobenius(model, x, n_projections=2000, generator=_gen(0), reduction="mean", squared=True)
    assert mean.ndim == 0 and float(mean) == pytest.approx(float(est.pow(2).mean()), rel=1e-12)


@pytest.mark.parametrize("dist", ["sphere", "normal", "rademacher"])
@pytest.mark.parametrize("make", [_mlp, lambda: _linear(torch.randn(4, D, generator=_gen(5), dtype=torch.float64))])
def test_single_projection_squared_estimate_is_unbiased(make, dist):
    model = make()
    n = 4000  # one sample repeated: each row draws its own projection, n independent estimates in one call
    x = _x(1).expand(n, *SHAPE).contiguous()
    exact_sq = float(jacobian_frobenius_exact(model, x[:1], squared=True))
    est = jacobian_frobenius(model, x, n_projections=1, generator=_gen(6), distribution=dist, squared=True)
    se = float(est.std()) / math.sqrt(n)
    assert abs(float(est.mean()) - exact_sq) < 4 * se + 1e-12 * exact_sq
    assert se < 0.05 * exact_sq  # the test has power


def test_jacobian_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Flatten(), nn.Linear(D, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Tanh(),
                          nn.Linear(8, 3)).double()
    model.train()
    model[3].eval()
    a = jacobian_frobenius(model, _x(4), n_projections=3, generator=_gen(0))
    b = jacobian_frobenius(model, _x(4), n_projections=3, generator=_gen(0))
    assert torch.equal(a, b)  # eval mode: no dropout, running BN statistics
    assert model.training and model[2].training and not model[3].training
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs", [{"n_projections": 0}, {"n_projections": 2, "distribution": "uniform"},
                                    {"n_projections": 2, "reduction": "sum"}, {"n_projections": 1.5}])
def test_jacobian_bad_arguments(kwargs):
    with pytest.raises(ProxyError) as err:
        jacobian_frobenius(_mlp(), _x(1), **kwargs)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- Hessian


@pytest.mark.parametrize("make", [_mlp, _conv])
def test_power_iteration_finds_the_exact_dominant_eigenvalue(make):
    model, x, y = make(), _x(2), torch.tensor([0, 2])
    exact = [_exact_eig(_sample_hessian(model, x[i], y[i])) for i in range(2)]
    eig, conv, k = hessian_top_eigenvalues(model, x, y, iterations=500, tol=1e-12, generator=_gen(0))
    assert conv.all() and 1 < k < 500
    assert torch.allclose(eig, torch.tensor(exact, dtype=torch.float64), rtol=1e-6)
    mean, converged, k2 = hessian_top_eigenvalue(model, x, y, iterations=500, tol=1e-12, generator=_gen(0))
    assert mean == pytest.approx(sum(exact) / 2, rel=1e-6) and converged and k2 == k


def test_batch_scope_is_the_hessian_of_the_batch_mean_loss():
    model, x, y = _conv(), _x(2), torch.tensor([1, 0])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(flat.view(2, *SHAPE)), y)

    exact = _exact_eig(torch.autograd.functional.hessian(loss, x.flatten()))
    per_sample = [_exact_eig(_sample_hessian(model, x[i], y[i])) for i in range(2)]
    assert exact == pytest.approx(max(per_sample, key=abs) / 2, rel=1e-9)  # block-diagonal, blocks H_i / B
    eig, converged, _ = hessian_top_eigenvalue(model, x, y, iterations=1000, tol=1e-12, generator=_gen(1),
                                               scope="batch")
    assert converged and eig == pytest.approx(exact, rel=1e-6)


def test_relu_model_hessian_is_the_gauss_newton_part():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    x, y = _x(1), torch.tensor([1])
    exact = _exact_eig(_sample_hessian(model, x[0], y[0]))
    eig, converged, _ = hessian_top_eigenvalue(model, x, y, iterations=500, tol=1e-12, generator=_gen(0))
    assert converged and exact > 0 and eig == pytest.approx(exact, rel=1e-6)


def test_convergence_flag_and_iteration_count():
    model, x, y = _mlp(), _x(3), torch.tensor([0, 1, 2])
    assert hessian_top_eigenvalue(model, x, y, iterations=1, tol=1e-12, generator=_gen(0))[1:] == (False, 1)
    _, converged, k = hessian_top_eigenvalue(model, x, y, iterations=3, tol=1e-15, generator=_gen(0))
    assert (converged, k) == (False, 3)
    _, converged, k = hessian_top_eigenvalue(model, x, y, iterations=200, tol=0.5, generator=_gen(0))
    assert converged and 2 <= k < 10
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs", [{"iterations": 0, "tol": 1e-3}, {"iterations": 5, "tol": -1.0},
                                    {"iterations": 5, "tol": 1e-3, "scope": "global"}])
def test_hessian_bad_arguments(kwargs):
    with pytest.raises(ProxyError):
        hessian_top_eigenvalue(_mlp(), _x(2), torch.tensor([0, 1]), **kwargs)


@pytest.mark.parametrize("y", [torch.tensor([0, 3]), torch.tensor([0]), torch.tensor([0.0, 1.0])])
def test_hessian_bad_labels(y):
    with pytest.raises(ProxyError) as err:
        hessian_top_eigenvalue(_mlp(), _x(2), y, iterations=2, tol=1e-3)
    assert "\n" not in str(err.value)


def test_over_batches_is_the_unweighted_mean():
    batches = [torch.full((n,), float(v)) for n, v in ((1, 1.0), (3, 2.0), (5, 6.0), (2, 100.0))]
    assert over_batches(lambda b: b.mean(), batches, n_batches=3) == pytest.approx(3.0)
    assert over_batches(lambda b: float(b[0]), batches) == pytest.approx(27.25)
    model = _mlp()
    pairs = [(_x(2, seed=s), torch.tensor([0, 1])) for s in range(3)]

    def top(b: tuple[torch.Tensor, torch.Tensor]) -> float:
        return hessian_top_eigenvalue(model, *b, iterations=50, tol=1e-10, generator=_gen(0))[0]

    got = over_batches(top, pairs)
    each = [top(b) for b in pairs]
    assert got == pytest.approx(sum(each) / 3, rel=1e-6)
    with pytest.raises(ProxyError):
        over_batches(lambda b: 0.0, batches, n_batches=10)
    with pytest.raises(ProxyError):
        over_batches(lambda b: 0.0, [])


# ---------------------------------------------------------------- FSP


def test_fsp_matrix_by_hand():
    f_in = torch.ones(1, 2, 2, 2)
    f_out = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 1.0]], [[-1.0, 1.0], [2.0, 2.0]]]])
    # F_in ≡ 1: G[i, j] = mean of F_out[j] = 2.5, 0.25, 1.0 for each i
    assert torch.equal(fsp_matrix(f_in, f_out), torch.tensor([[[2.5, 0.25, 1.0], [2.5, 0.25, 1.0]]]))
    f_in2 = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 2.0]]]])
    # row 0: F_out at (0, 0) / 4 = 1/4, 0, −1/4; row 1: 2·(F_out(0,1) + F_out(1,1)) / 4
    assert torch.allclose(fsp_matrix(f_in2, f_out), torch.tensor([[[0.25, 0.0, -0.25], [3.0, 0.5, 1.5]]]))


def test_fsp_distance_by_hand():
    f_in = torch.ones(2, 2, 2, 2)
    f_out = torch.arange(24.0).reshape(2, 3, 2, 2)
    g = fsp_matrix(f_in, f_out)
    assert fsp_matrix_distance(g, g.clone()) == 0.0
    adv = f_out.clone()
    adv[0, 0] += 1.0  # sample 0: column 0 of G moves by 1 in both rows → ‖ΔG‖² = 2; sample 1 unchanged
    assert fsp_matrix_distance(g, fsp_matrix(f_in, adv)) == pytest.approx(1.0, abs=1e-12)
    adv[1, 2] -= 3.0  # sample 1: column 2 moves by −3 in both rows → 18
    assert fsp_matrix_distance(g, fsp_matrix(f_in, adv)) == pytest.approx((2 + 18) / 2, abs=1e-12)


def test_fsp_sizes_differing_pool_the_larger_map():
    f_in = torch.arange(16.0).reshape(1, 1, 4, 4)
    f_out = torch.tensor([[[[1.0, 0.0], [0.0, 2.0]]]])
    # F_in pooled 2×2: [[2.5, 4.5], [10.5, 12.5]] → (2.5·1 + 12.5·2) / 4
    assert torch.allclose(fsp_matrix(f_in, f_out), torch.tensor([[[27.5 / 4]]]))
    assert torch.allclose(fsp_matrix(f_out, f_in), torch.tensor([[[27.5 / 4]]]))
    with pytest.raises(ProxyError):
        fsp_matrix(f_in, f_out, resize="error")
    with pytest.raises(ProxyError):
        fsp_matrix(f_in[0], f_out)
    with pytest.raises(ProxyError):
        fsp_matrix_distance(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4))


def test_fsp_hook_helper_gives_one_distance_per_block():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                          nn.BatchNorm2d(6), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    x = torch.rand(3, 3, 8, 8, generator=_gen(0))
    x_adv = (x + 0.03 * torch.randn(x.shape, generator=_gen(1))).clamp(0, 1)
    blocks = [model[0], model[2], model[1]]
    assert fsp_distance(model, blocks, x, x) == [0.0, 0.0, 0.0]
    got = fsp_distance(model, blocks, x, x_adv)
    model.eval()
    with torch.no_grad():
        want = []
        for block, feed in ((model[0], lambda t: t), (model[2], lambda t: model[1](model[0](t))),
                            (model[1], lambda t: model[0](t))):
            a, b = feed(x), feed(x_adv)
            want.append(fsp_matrix_distance(fsp_matrix(a, block(a)), fsp_matrix(b, block(b))))
    assert len(got) == 3 and all(d > 0 for d in got)
    assert got == pytest.approx(want, rel=1e-6)
    with pytest.raises(ProxyError):
        fsp_distance(model, [nn.Conv2d(3, 3, 1)], x, x_adv)  # not part of the model: never runs
    assert fsp_distance(model, [model[5]], x, x_adv)[0] > 0  # 4×4 input pooled to the 1×1 output
    with pytest.raises(ProxyError):
        fsp_distance(model, [model[6]], x, x_adv)  # Flatten: a 2-D output is no feature map
    with pytest.raises(ProxyError):
        fsp_distance(model, [], x, x_adv)


def test_fsp_block_run_twice_is_refused():
    conv = nn.Conv2d(2, 2, 1)
    model = nn.Sequential(conv, nn.Tanh(), conv)
    x = torch.rand(1, 2, 3, 3, generator=_gen(0))
    with pytest.raises(ProxyError) as err:
        fsp_distance(model, [conv], x, x)
    assert "2 times" in str(err.value)
