"""Prompt-pair datasets, answer parsing and the word-similarity metric of the prompt-pairs study."""

import numpy as np
import pytest

from interp.data.prompt_pairs import DATASETS, all_pairs, check_single_token, split_pairs
from interp.semantic import first_content_word, first_word, word_cosines
from interp.studies.prompt_pairs import mean_ci, per_pair


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_datasets_are_well_formed(name):
    pairs = all_pairs(name)
    assert len(pairs) == 1280 and len(set(pairs)) == 1280
    for p in pairs[:50]:
        assert "<" not in p.prefix and p.positive != p.negative
        assert p.pos_text == f"{p.prefix} {p.positive}" and p.neg_text.endswith(" " + p.negative)
    test, train = split_pairs(name, 100, 1024, seed=1)
    assert len(test) == 100 and len(train) == 1024 and not set(test) & set(train)
    assert split_pairs(name, 100, 1024, seed=1) == (test, train)
    with pytest.raises(ValueError, match="exceeds the 1280 pairs"):
        split_pairs(name, 300, 1024)


def test_unknown_dataset_and_multi_token_targets():
    with pytest.raises(ValueError, match="dataset='nope'"):
        all_pairs("nope")

    class Tok:  # splits words longer than 5 letters in two
        def encode(self, text, add_special_tokens=False):
            return [len(text)] if len(text) <= 6 else [1, 2]

        def decode(self, ids):
            return str(ids)

    assert check_single_token(Tok(), ["won", "lost"]) == {"won": 4, "lost": 5}
    with pytest.raises(ValueError, match="triumphed"):
        check_single_token(Tok(), ["won", "triumphed"])


@pytest.mark.parametrize(
    "text, want",
    [(" won the cup", "won"), ("\n\nRefused.", "refused"), (" 42 apples", "apples"), ("  ...", ""), ("", "")],
)
def test_first_word(text, want):
    assert first_word(text) == want


def test_word_cosines_undefined_without_a_word():
    """A planted embedding: identical words cosine 1, orthogonal 0; no generated word → NaN
    (undefined, not a zero that would drag the mean down)."""
    table = {"good": [1.0, 0.0], "great": [1.0, 0.0], "table": [0.0, 1.0]}
    embed = lambda words: np.array([table[w] for w in words])  # noqa: E731
    got = word_cosines(embed, ["great", "table", ""], ["good", "good", "good"])
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(0.0) and np.isnan(got[2])


def test_per_pair_averages_draws_and_keeps_undefined():
    cells = {("caa", 4, 0): {"cosine": [0.2, np.nan, np.nan]}, ("caa", 4, 1): {"cosine": [0.4, 0.6, np.nan]}}
    got = per_pair(cells, "caa", 4, "cosine", draws=2)
    assert got[0] == pytest.approx(0.3) and got[1] == pytest.approx(0.6) and np.isnan(got[2])
    m, lo, hi = mean_ci(got)  # over the two defined pairs only
    assert m == pytest.approx(0.45) and lo < m < hi
    assert all(np.isnan(mean_ci(np.array([np.nan]))))


@pytest.mark.parametrize(
    "text, want",
    [(" a great experience", "great"), (" was not able", "able"), (" to be honest", "honest"), (" the a to", "")],
)
def test_first_content_word(text, want):
    assert first_content_word(text) == want


def test_pooled_shift_is_a_ratio_of_pooled_means():
    from interp.studies.prompt_pairs import pooled_shift

    # dataset A: unsteered 0, positives 1, steered 0.5; dataset B: a tiny gap (0 -> 0.01), steered 0.1
    a = (np.array([0.5, 0.5]), np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    b = (np.array([0.1]), np.array([0.0]), np.array([0.01]))
    # a mean of per-dataset ratios would say (0.5 + 10) / 2 = 5.25, dominated by B's tiny gap
    assert pooled_shift([a, b]) == pytest.approx((0.5 + 0.1) / (1.0 + 0.01))
    assert pooled_shift([a]) == pytest.approx(0.5)
    assert np.isnan(pooled_shift([]))  # no dataset with target features: undefined
    flat = (np.array([0.3]), np.array([0.2]), np.array([0.2]))  # positives at the unsteered level
    assert np.isnan(pooled_shift([flat]))


def test_random_push_keeps_the_edits_norm_per_row_and_drops_its_direction():
    import torch

    from interp.studies.prompt_pairs.core import _random_push

    a = torch.randn(5, 16)
    shift = torch.randn(16)
    edit = lambda x: x + 3.0 * shift  # noqa: E731
    u = torch.zeros(16)
    u[0] = 1.0
    pushed = _random_push(edit, u)(a)
    assert torch.allclose((pushed - a).norm(dim=-1), (edit(a) - a).norm(dim=-1))
    assert torch.allclose((pushed - a)[:, 1:], torch.zeros(5, 15))


def test_control_points_compare_the_adapter_with_its_random_controls_pair_by_pair():
    from types import SimpleNamespace

    from interp.studies.prompt_pairs.study import PromptPairsConfig, control_points

    cfg = PromptPairsConfig(n_controls=2)
    vec = {"cosine_content": np.array([0.5, 0.6, 0.7]), "target": np.array([1.0, 1.0, 1.0]), "changed": 0.5}
    ctl = {"cosine_content": np.array([0.3, 0.3, 0.3]), "target": np.array([0.0, 0.0, 0.0]), "changed": 0.4}
    r = SimpleNamespace(doses={("caa", 1.0): vec}, controls={("caa", 1.0, 0): ctl, ("caa", 1.0, 1): ctl})
    p = control_points(cfg, {"d": r}, "caa", 1.0)
    assert p["cosine_content"].difference == pytest.approx(0.3) and p["target"].difference == pytest.approx(1.0)
    assert p["changed"] == 0.5 and p["changed_control"] == 0.4
    assert control_points(PromptPairsConfig(n_controls=0), {"d": r}, "caa", 1.0) is None
