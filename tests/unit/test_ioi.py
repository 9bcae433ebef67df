"""IOI pairs in both name orders: ABBA names the indirect object first, BABA the subject; the
corruption replaces only the second subject mention; the ABBA set does not depend on whether
BABA is asked for too."""

import pytest

from interp.data.ioi import ioi_pairs


def test_both_orders():
    p = ioi_pairs(4, seed=3, orders=["ABBA", "BABA"])
    assert p.order == ["ABBA"] * 4 + ["BABA"] * 4
    for clean, corr, io, s, third, order in zip(p.clean, p.corrupted, p.io, p.s, p.third, p.order):
        first_io, first_s = clean.index(io), clean.index(s)
        assert (first_io < first_s) == (order == "ABBA")  # which name comes first
        assert clean.count(s) == 2 and clean.count(io) == 1
        assert corr.count(s) == 1 and corr.count(third) == 1 and clean.rindex(s) == corr.rindex(third)
    only_abba = ioi_pairs(4, seed=3)
    assert only_abba.clean == p.clean[:4] and only_abba.order == ["ABBA"] * 4


def test_bad_orders():
    with pytest.raises(ValueError, match="orders="):
        ioi_pairs(2, orders=["ABAB"])
    with pytest.raises(ValueError, match="orders="):
        ioi_pairs(2, orders=[])
