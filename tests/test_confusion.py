"""Confusion and confidence statistics (PROTOCOL §7.2) on hand-computed values, NaN rules, batch-split invariance."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nares.evaluate.confusion import (
    ConfusionError,
    ConfusionStats,
    confidence_by_predicted_class,
    confidence_by_true_class,
    confidence_correct_incorrect,
    confusion_matrix,
    confusion_rows,
)

NAN = math.nan
# Five points, four classes; class 3 is never the true nor the predicted class.
PROBS = torch.tensor([
    [0.5, 0.25, 0.125, 0.125],   # y=0, pred 0 ✓
    [0.25, 0.5, 0.125, 0.125],   # y=0, pred 1 ✗
    [0.2, 0.2, 0.5, 0.1],        # y=1, pred 2 ✗
    [0.1, 0.1, 0.7, 0.1],        # y=2, pred 2 ✓
    [0.125, 0.625, 0.125, 0.125],  # y=1, pred 1 ✓
], dtype=torch.float64)
Y = torch.tensor([0, 0, 1, 2, 1])
PRED = torch.tensor([0, 1, 2, 2, 1])
CM = [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
CONF_TRUE = [[0.375, 0.375, 0.125, 0.125], [0.1625, 0.4125, 0.3125, 0.1125], [0.1, 0.1, 0.7, 0.1], [NAN] * 4]
CONF_PRED = [[0.5, 0.25, 0.125, 0.125], [0.1875, 0.5625, 0.125, 0.125], [0.15, 0.15, 0.6, 0.1], [NAN] * 4]
CORRECT, INCORRECT = (0.5 + 0.7 + 0.625) / 3, 0.5


def _same(got: torch.Tensor, want: list, tol: float = 1e-12) -> None:
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=tol, rtol=0, equal_nan=True)


def test_hand_values_of_each_function():
    cm = confusion_matrix(PRED, Y, 4)
    assert cm.dtype == torch.long and cm.tolist() == CM  # rows = true class, columns = predicted
    _same(confidence_by_true_class(PROBS, Y, 4), CONF_TRUE)
    _same(confidence_by_predicted_class(PROBS, PRED, 4), CONF_PRED)
    correct, incorrect = confidence_correct_incorrect(PROBS, PRED, Y)
    assert correct == pytest.approx(CORRECT, abs=1e-15) and incorrect == pytest.approx(INCORRECT, abs=1e-15)


def test_accumulator_from_logits_matches_the_hand_values():
    stats = ConfusionStats(4)
    logits = PROBS.log() + 3.0  # softmax(log p + const) = p
    stats.update(logits[:2], Y[:2])
    stats.update(logits[2:], Y[2:])
    r = stats.result()
    assert r.n == 5 and r.accuracy == 3 / 5 and r.cm.tolist() == CM
    _same(r.confidence_true, CONF_TRUE)
    _same(r.confidence_pred, CONF_PRED)
    assert r.confidence_correct == pytest.approx(CORRECT, abs=1e-12)
    assert r.confidence_incorrect == pytest.approx(INCORRECT, abs=1e-12)
    cell = json.loads(json.dumps(r.cell(), allow_nan=False))  # NaN → null: strict JSON
    assert cell["conf_true"][3] == [None] * 4 and cell["cm"] == CM and cell["acc"] == 0.6
    rows = {(m, k): v for m, k, v in confusion_rows(cell)}
    assert len(rows) == 3 + 3 * 16
    assert rows[("cm", "0/1")] == 1 and rows[("conf_pred", "1/1")] == pytest.approx(0.5625)
    assert math.isnan(rows[("conf_true", "3/0")]) and rows[("acc", "")] == 0.6


def test_nan_rules_for_empty_groups():
    probs = PROBS[[0, 3]]
    right, wrong = Y[[0, 3]], torch.tensor([1, 1])
    c, i = confidence_correct_incorrect(probs, torch.tensor([0, 2]), right)
    assert c == pytest.approx(0.6) and math.isnan(i)
    c, i = confidence_correct_incorrect(probs, torch.tensor([0, 2]), wrong)
    assert math.isnan(c) and i == pytest.approx(0.6)
    by_true = confidence_by_true_class(probs, wrong, 4)
    assert torch.isnan(by_true[[0, 2, 3]]).all() and not torch.isnan(by_true[1]).any()
    c, i = confidence_correct_incorrect(PROBS[:0], PRED[:0], Y[:0])
    assert math.isnan(c) and math.isnan(i)
    assert torch.isnan(confidence_by_predicted_class(PROBS[:0], PRED[:0], 4)).all()


def test_ties_predict_the_first_class():
    stats = ConfusionStats(3)
    stats.update(torch.zeros(2, 3), torch.tensor([0, 2]))
    r = stats.result()
    assert r.cm.tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 0]]
    assert r.confidence_correct == pytest.approx(1 / 3) and r.confidence_incorrect == pytest.approx(1 / 3)


def test_any_batch_split_gives_the_one_batch_result():
    g = torch.Generator().manual_seed(0)
    n, c = 257, 10
    logits = 3 * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c - 1, (n,), generator=g)  # class 9 never true: NaN row
    whole = ConfusionStats(c)
    whole.update(logits, y)
    ref = whole.result()
    probs, pred = torch.softmax(logits, 1), logits.argmax(1)
    assert torch.equal(ref.cm, confusion_matrix(pred, y, c))
    assert torch.allclose(ref.confidence_true, confidence_by_true_class(probs, y, c), atol=1e-12, equal_nan=True)
    assert torch.allclose(ref.confidence_pred, confidence_by_predicted_class(probs, pred, c), atol=1e-12,
                          equal_nan=True)
    assert torch.isnan(ref.confidence_true[9]).all()
    for cuts in ([1, 100, 200], [128], list(range(1, n)), [5, 6, 250]):
        split = ConfusionStats(c)
        for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
            split.update(logits[lo:hi], y[lo:hi])
        r = split.result()
        assert r.n == n and r.accuracy == ref.accuracy and torch.equal(r.cm, ref.cm)
        for a, b in ((r.confidence_true, ref.confidence_true), (r.confidence_pred, ref.confidence_pred)):
            assert torch.allclose(a, b, atol=1e-12, rtol=0, equal_nan=True)
        assert abs(r.confidence_correct - ref.confidence_correct) < 1e-12
        assert abs(r.confidence_incorrect - ref.confidence_incorrect) < 1e-12


def test_float32_logits_are_accumulated_in_float64():
    stats = ConfusionStats(4)
    stats.update((PROBS.log()).float(), Y)
    r = stats.result()
    assert r.confidence_true.dtype == torch.float64 and r.cm.tolist() == CM
    _same(r.confidence_true, CONF_TRUE, tol=1e-6)


@pytest.mark.parametrize("call", [
    lambda: confusion_matrix(PRED[:4], Y, 4),                        # length mismatch
    lambda: confusion_matrix(PRED, torch.tensor([0, 0, 1, 4, 1]), 4),  # label ≥ C
    lambda: confusion_matrix(PRED, torch.tensor([0, 0, -1, 2, 1]), 4),  # negative label
    lambda: confusion_matrix(PRED.double(), Y, 4),                   # float predictions
    lambda: confusion_matrix(PRED, Y, 0),                            # no classes
    lambda: confidence_by_true_class(PROBS, Y, 3),                   # C ≠ columns
    lambda: confidence_by_true_class(PROBS, Y[:3], 4),               # rows ≠ labels
    lambda: confidence_by_predicted_class(PROBS[0], PRED, 4),        # 1-D probabilities
    lambda: confidence_correct_incorrect(PROBS, PRED, Y[1:]),        # length mismatch
    lambda: ConfusionStats(3).update(PROBS.log(), Y),                # 4 logits for 3 classes
    lambda: ConfusionStats(4).update(PROBS.log(), Y.reshape(5, 1)),  # 2-D labels
    lambda: ConfusionStats(4).result(),                              # nothing added
])
def test_bad_inputs_raise_one_line_errors(call):
    with pytest.raises(ConfusionError) as err:
        call()
    assert "\n" not in str(err.value) and str(err.value)
