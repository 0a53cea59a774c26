import numpy as np
import pytest
import torch
import torch.nn as nn

from emotionnas.training.loop import ArraySplit, TrainConfig, fit, predict_proba
from emotionnas.metrics import confusion_matrix, macro_f1, unweighted_accuracy, weighted_accuracy


def test_metrics_on_known_case():
    y = [0, 0, 0, 0, 1, 1]
    p = [0, 0, 0, 0, 0, 1]
    assert weighted_accuracy(y, p) == pytest.approx(100 * 5 / 6)
    assert unweighted_accuracy(y, p, 2) == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert confusion_matrix(y, p, 2).tolist() == [[4, 0], [1, 1]]
    # F1 class0 = 2*4/(5+4)=0.889, class1 = 2*1/(1+2)=0.667
    assert macro_f1(y, p, 2) == pytest.approx(100 * (8 / 9 + 2 / 3) / 2)


def test_fit_learns_separable_data_and_keeps_best_epoch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x[:, 0] > 0).long().numpy()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    res = fit(model, ArraySplit((x[:80],), y[:80]), ArraySplit((x[80:],), y[80:]),
              TrainConfig(epochs=40, lr=1e-2, patience=10), n_classes=2, seed=0)
    assert res.best_val_ua > 90
    pred = predict_proba(model, ArraySplit((x[80:],), y[80:])).argmax(1)
    # the restored weights are those of the best epoch
    assert unweighted_accuracy(y[80:], pred, 2) == pytest.approx(res.best_val_ua)
    assert res.history[res.best_epoch - 1]["val_ua"] == pytest.approx(res.best_val_ua)


def test_batchnorm_model_on_one_batch_per_epoch_does_not_collapse_in_eval():
    # Inputs far from the initial running statistics (mean 0, var 1) and only one batch per
    # epoch: with the default momentum, eval-mode predictions collapse to a single class.
    g = torch.Generator().manual_seed(1)
    x = 20 + 5 * torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 20).long().numpy()
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    res = fit(model, ArraySplit((x[:32],), y[:32]), ArraySplit((x[32:],), y[32:]),
              TrainConfig(epochs=8, lr=1e-2, batch_size=32, patience=8), n_classes=2, seed=0)
    assert res.best_val_ua > 80
