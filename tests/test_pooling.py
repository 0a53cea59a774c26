import torch

from emotionnas.models.pooling import AttentionPooling, lengths_to_mask


def test_weights_sum_to_one_on_valid_frames_and_zero_on_padding():
    torch.manual_seed(0)
    pool = AttentionPooling(8)
    x = torch.randn(3, 6, 8)
    lengths = torch.tensor([6, 3, 1])
    mask = lengths_to_mask(lengths, 6)
    out, w = pool(x, mask, return_weights=True)
    assert out.shape == (3, 8) and w.shape == (3, 6)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    assert torch.all(w[~mask] == 0)
    assert torch.all(w[mask] > 0)
    # length 1 -> output is exactly that frame
    torch.testing.assert_close(out[2], x[2, 0])


def test_padding_content_does_not_change_output():
    torch.manual_seed(0)
    pool = AttentionPooling(4)
    x = torch.randn(2, 5, 4)
    mask = lengths_to_mask(torch.tensor([5, 2]), 5)
    a = pool(x, mask)
    x2 = x.clone()
    x2[1, 2:] = 100.0
    b = pool(x2, mask)
    torch.testing.assert_close(a, b)


def test_no_mask_and_empty_row():
    pool = AttentionPooling(4)
    x = torch.randn(2, 3, 4)
    out, w = pool(x, None, return_weights=True)
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out, w = pool(x, mask, return_weights=True)
    assert torch.isfinite(out).all()
    assert torch.all(w[1] == 0) and torch.all(out[1] == 0)
