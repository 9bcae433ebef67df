import pytest
import torch

from interp.hooks import head_mask, position_mask


def test_position_forms():
    assert position_mask(None, 2, 4).all()
    m = position_mask(-1, 2, 4)
    assert m[:, 3].all() and m.sum() == 2
    m = position_mask([0, 2], 2, 4)
    assert m[:, [0, 2]].all() and m.sum() == 4
    m = position_mask(torch.tensor([1, 3]), 2, 4)
    assert m[0, 1] and m[1, 3] and m.sum() == 2
    m = position_mask(torch.tensor([[0, 1], [2, 3]]), 2, 4)
    assert m.tolist() == [[True, True, False, False], [False, False, True, True]]


@pytest.mark.parametrize("bad", [4, [0, 9], torch.tensor([0, 5])])
def test_position_out_of_range(bad):
    with pytest.raises(ValueError, match="out of range for a sequence of length 4"):
        position_mask(bad, 2, 4)


def test_per_prompt_positions_wrong_batch():
    with pytest.raises(ValueError, match=r"\[batch=2\]"):
        position_mask(torch.tensor([0, 1, 2]), 2, 4)


def test_head_mask():
    assert head_mask([1, -1], 4).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="heads=.*out of range.*4 heads"):
        head_mask([4], 4)
