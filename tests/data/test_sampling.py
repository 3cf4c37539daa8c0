import numpy as np

from keras_siamese.data.sampling import cycled_permutation, group_by_class


def test_cycled_permutation_uses_each_item_before_repeating_and_never_inside_a_block():
    pool = np.arange(10, 17)  # 7 items, blocks of 3: 6 used per shuffle
    draws = cycled_permutation(np.random.default_rng(0), pool, 30, block=3)
    assert len(draws) == 30
    for start in range(0, 30, 6):
        shuffle = draws[start:start + 6]
        assert len(set(shuffle.tolist())) == 6 and set(shuffle.tolist()) <= set(pool.tolist())
    assert len(cycled_permutation(np.random.default_rng(0), pool, 0)) == 0


def test_group_by_class():
    classes, members = group_by_class(np.array([3, 1, 3, 3, 1]))
    assert classes.tolist() == [1, 3]
    assert [m.tolist() for m in members] == [[1, 4], [0, 2, 3]]

