import numpy as np
import pytest
import torch
import torch.nn as nn

from emotionnas.config import TrainConfig
from emotionnas.training.loop import ArraySplit, predict_proba, train_model
from emotionnas.metrics import confusion_matrix, macro_f1, unweighted_accuracy, weighted_accuracy


def test_metrics_on_known_case():
    y = [0, 0, 0, 0, 1, 1]
    p = [0, 0, 0, 0, 0, 1]
    assert weighted_accuracy(y, p) == pytest.approx(100 * 5 / 6)
    assert unweighted_accuracy(y, p, 2) == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert confusion_matrix(y, p, 2).tolist() == [[4, 0], [1, 1]]
    # F1 class0 = 2*4/(5+4)=0.889, class1 = 2*1/(1+2)=0.667
    assert macro_f1(y, p, 2) == pytest.approx(100 * (8 / 9 + 2 / 3) / 2)


def test_train_model_learns_and_records_every_epoch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x[:, 0] > 0).long().numpy()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    res = train_model(model, ArraySplit((x[:80],), y[:80]), TrainConfig(epochs=20, lr=1e-2), 2, seed=0,
                      val=ArraySplit((x[80:],), y[80:]))
    assert len(res.val_probs) == 20 == len(res.history)
    assert res.history[-1]["val_ua"] > 90
    # the last recorded probabilities are the trained model's predictions
    np.testing.assert_allclose(res.val_probs[-1], predict_proba(model, ArraySplit((x[80:],), y[80:])), atol=1e-6)


def test_refit_stops_at_the_chosen_epoch_of_the_same_schedule():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 1] > 0).long().numpy()
    tr, va = ArraySplit((x[:48],), y[:48]), ArraySplit((x[48:],), y[48:])

    def make():
        torch.manual_seed(7)
        return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))
    full = train_model(make(), tr, TrainConfig(epochs=10), 2, seed=3, val=va)
    short = make()
    res = train_model(short, tr, TrainConfig(epochs=10), 2, seed=3, stop_after=4)
    assert res.epochs == 4 and len(res.history) == 4
    np.testing.assert_allclose(predict_proba(short, va), full.val_probs[3], atol=1e-6)


def test_batchnorm_model_on_one_batch_per_epoch_does_not_collapse_in_eval():
    # Inputs far from the initial running statistics (mean 0, var 1) and only one batch per
    # epoch: with the default momentum, eval-mode predictions collapse to a single class.
    g = torch.Generator().manual_seed(1)
    x = 20 + 5 * torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 20).long().numpy()
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    res = train_model(model, ArraySplit((x[:32],), y[:32]), TrainConfig(epochs=8, lr=1e-2, batch_size=32, mixup=0.0), 2,
                      seed=0, val=ArraySplit((x[32:],), y[32:]))
    assert max(h["val_ua"] for h in res.history) > 80


def test_augmentation_masks_only_training_batches_and_is_seeded():
    from emotionnas.training.loop import augment
    cfg = TrainConfig(time_mask=0.25, freq_mask=0.25)
    spec = torch.ones(3, 1, 8, 8)
    deep, lengths = torch.ones(3, 2, 10, 4), torch.tensor([10, 6, 3])
    a = augment((spec, deep, lengths), cfg, torch.Generator().manual_seed(0))
    b = augment((spec, deep, lengths), cfg, torch.Generator().manual_seed(0))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    s, d, n = a
    assert torch.equal(n, lengths)
    # one time span (2 of 8 columns) and one frequency span (2 of 8 rows) zeroed per spectrogram
    for i in range(3):
        assert (s[i, 0].sum(0) == 0).sum() == 2 and (s[i, 0].sum(1) == 0).sum() == 2
    assert 0 < (d == 0).float().mean() < 0.6 and torch.equal(spec, torch.ones(3, 1, 8, 8))  # inputs untouched
    assert augment((spec,), TrainConfig(), torch.Generator()) [0] is spec  # off: no copy


def test_balanced_batches_draw_classes_equally():
    from emotionnas.training.loop import balanced_batches
    labels = np.array([0] * 90 + [1] * 10)
    idx = np.concatenate(balanced_batches(labels, 16, torch.Generator().manual_seed(0)))
    assert len(idx) == 100 and abs((labels[idx] == 1).mean() - 0.5) < 0.05


def test_mixup_mixes_every_input_with_one_partner_and_keeps_the_longer_length():
    from emotionnas.training.loop import mixup
    spec = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 3, 3).clone()
    deep, lengths = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 5, 2).clone(), torch.tensor([5, 2, 4, 1])
    (s, d, n), perm, lam = mixup((spec, deep, lengths), 0.4, torch.Generator().manual_seed(3))
    again = mixup((spec, deep, lengths), 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(again[1], perm) and again[2] == lam            # seeded
    assert 0.0 < lam < 1.0 and sorted(perm.tolist()) == [0, 1, 2, 3]
    want = lam * torch.arange(4.0) + (1 - lam) * torch.arange(4.0)[perm]
    torch.testing.assert_close(s[:, 0, 0, 0], want)
    torch.testing.assert_close(d[:, 0, 0, 0], want)
    assert torch.equal(n, torch.maximum(lengths, lengths[perm]))
    with pytest.raises(Exception, match="train.mixup"):
        TrainConfig(mixup=-1)


def test_training_with_mixup_still_learns_a_separable_task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 4, generator=g)
    y = (x[:, 0] > 0).long().numpy()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    res = train_model(model, ArraySplit((x[:120],), y[:120]), TrainConfig(epochs=20, lr=1e-2, mixup=0.4), 2,
                      seed=0, val=ArraySplit((x[120:],), y[120:]))
    assert res.history[-1]["val_ua"] > 90
    plain = train_model(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), ArraySplit((x[:120],), y[:120]),
                        TrainConfig(epochs=20, lr=1e-2, mixup=0.0), 2, seed=0)
    assert res.history[-1]["train_loss"] > plain.history[-1]["train_loss"]  # mixed targets: a harder loss
