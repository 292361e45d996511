"""Data sets: the loaders return what their sources hold, and the npz loader
rejects bad arrays with errors that say what is wrong."""

import numpy as np
import pytest

from neurolns.data import Dataset, load_digits, load_mnist1d, load_npz, save_npz


def test_digits_is_sklearn_digits_scaled_and_split_without_overlap():
    """All 1,797 images, pixels /16 in [0, 1], an 80/20 seeded split covering each once."""
    from sklearn.datasets import load_digits as sk

    d = load_digits()
    ref = sk()
    assert (d.n_train, d.n_test, d.n_features, d.n_classes) == (1438, 359, 64, 10)
    both = np.concatenate([d.x_train, d.x_test]) * 16
    assert sorted(map(bytes, both.astype(np.uint8))) == sorted(map(bytes, ref.data.astype(np.uint8)))
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert np.array_equal(load_digits(seed=0).y_test, d.y_test)
    assert not np.array_equal(load_digits(seed=1).y_test, d.y_test)


def test_mnist1d_matches_the_package_and_caches(tmp_path):
    """The arrays are mnist1d's own (same seed → same data); the cache file reads back equal."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 100
    ref = make_dataset(args)
    d = load_mnist1d(num_samples=100, cache_dir=tmp_path)
    np.testing.assert_array_equal(d.x_train, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(d.y_test, ref["y_test"])
    assert (tmp_path / "mnist1d_100_42.npz").exists()
    again = load_mnist1d(num_samples=100, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.x_test, d.x_test)
    assert again.name == "mnist1d" and again.n_features == 40


def test_npz_round_trip(tmp_path):
    d = Dataset(np.arange(12.0).reshape(4, 3), [0, 1, 2, 1], np.ones((2, 3)), [2, 0], n_classes=4, name="toy")
    save_npz(tmp_path / "toy.npz", d)
    e = load_npz(tmp_path / "toy.npz", n_classes=4)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(e, k), getattr(d, k))
    assert e.n_classes == 4 and e.name == "toy"
    # images (N, 8, 8) are flattened
    np.savez(tmp_path / "img.npz", x_train=np.zeros((3, 2, 2)), y_train=[0, 1, 0], x_test=np.zeros((1, 2, 2)),
             y_test=[1])
    assert load_npz(tmp_path / "img.npz").n_features == 4


def _write(tmp_path, **over):
    arrays = dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 3)),
                  y_test=np.array([1, 0]))
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("over,err,match", [
    (dict(y_test=None), ValueError, r"lacks array\(s\) \['y_test'\]"),
    (dict(x_train=np.array([[0, 1, np.nan]] * 4)), ValueError, "NaN.*row 0, feature 2"),
    (dict(x_test=np.array([[np.inf, 0, 0]] * 2)), ValueError, "non-finite"),
    (dict(x_test=np.zeros((2, 5))), ValueError, "3 features but x_test has 5"),
    (dict(y_train=np.array([0, 1, 0])), ValueError, "3 labels for 4 examples"),
    (dict(y_train=np.array([0, 1, -1, 1])), ValueError, "negative label"),
    (dict(y_train=np.array([0.5, 1, 0, 1])), ValueError, "whole-number"),
    (dict(x_train=np.array(["a", "b", "c", "d"]).reshape(4, 1)), TypeError, "dtype"),
    (dict(x_train=np.zeros(4)), ValueError, r"shape \(N, features"),
])
def test_npz_loader_rejects_bad_arrays(tmp_path, over, err, match):
    with pytest.raises(err, match=match):
        load_npz(_write(tmp_path, **over))


def test_npz_loader_other_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="not a readable"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="labels go up to 1 but n_classes=1|n_classes=1"):
        load_npz(_write(tmp_path), n_classes=1)
    with pytest.raises(ValueError, match="labels go up to 1 but n_classes=2|allowed labels"):
        Dataset(np.zeros((2, 1)), [0, 2], np.zeros((1, 1)), [0], n_classes=2)


def test_dataset_arrays_are_read_only_and_subset_works():
    d = load_digits().subset(10, 5)
    assert d.n_train == 10 and d.n_test == 5
    with pytest.raises(ValueError):
        d.x_train[0, 0] = 1.0
