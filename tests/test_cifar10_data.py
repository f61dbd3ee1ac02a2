"""CIFAR-10 loaders (the shared tar, an image-folder tree, torchvision's batches folder) agree on images,
labels and order; CIFAR-10N is joined in the original order; the exact-share label noise. Uses
``../shared/data/cifar10`` (skipped, saying so, where that folder is absent); decodes a few hundred
images, not the 60,000."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sap_kernels.datasets import (
    ASYMMETRIC_PAIRS,
    CLASSES,
    asymmetric_pairs_noise,
    exact_symmetric_noise,
    load_cifar10,
    load_cifar10n,
    make_label_set,
    shared_cifar10_dir,
)
from sap_kernels.datasets.batches import write_batches_folder
from sap_kernels.datasets.jpeg import read_jpeg_members

SHARED = shared_cifar10_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "cifar10-jpg.tar.gz").is_file(),
                                  reason=f"the shared CIFAR-10 copy is absent ({SHARED})")
TRAIN_POS = list(range(0, 50000, 397))  # 126 training images across the original order
TEST_PER_CLASS = 6


@pytest.fixture(scope="module")
def cifar10n():
    return load_cifar10n(SHARED / "cifar10n_labels.npz")


@pytest.fixture(scope="module")
def members():
    """JPEG bytes of every image in the tar: one pass over the stream, nothing decoded."""
    return read_jpeg_members(SHARED / "cifar10-jpg.tar.gz", CLASSES)


@needs_shared
def test_cifar10n_clean_label_is_the_class_folder_at_every_index(cifar10n, members):
    folders = np.array([f.split("/")[1] for f in cifar10n.train_file])
    assert (folders == np.array(CLASSES)[cifar10n.clean.numpy()]).all()
    assert len(set(cifar10n.train_file)) == 50000
    assert set(cifar10n.train_file) == {n for n in members if n.startswith("train/")}
    assert sum(n.startswith("test/") for n in members) == 10000
    assert np.bincount(cifar10n.clean.numpy()).tolist() == [5000] * 10


def _subset_tree(tmp_path, members, train_names):
    """An image-folder tree of the chosen training images and the first test images of each class,
    written from the tar's own JPEG bytes."""
    test = [n for c in CLASSES for n in sorted(m for m in members if m.startswith(f"test/{c}/"))[:TEST_PER_CLASS]]
    for name in [*train_names, *test]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(members[name])
    return tmp_path


@needs_shared
def test_tar_tree_and_batches_folder_give_the_same_images_and_labels(tmp_path, cifar10n, members):
    names = [str(cifar10n.train_file[p]) for p in TRAIN_POS]
    test_index = [c * 1000 + k for c in range(10) for k in range(TEST_PER_CLASS)]
    tar = load_cifar10(SHARED / "cifar10-jpg.tar.gz", train_files=cifar10n.train_file, train_index=TRAIN_POS,
                       test_index=test_index)
    tree = load_cifar10(_subset_tree(tmp_path / "tree", members, names), train_files=names)
    assert tar.train_x.dtype == torch.uint8 and tar.train_x.shape == (len(TRAIN_POS), 3, 32, 32)
    assert tar.train_y.dtype == torch.int64 and tar.train_order == "original"
    assert torch.equal(tar.train_y, cifar10n.clean[TRAIN_POS])
    for a, b in ((tar.train_x, tree.train_x), (tar.train_y, tree.train_y), (tar.test_x, tree.test_x),
                 (tar.test_y, tree.test_y)):
        assert torch.equal(a, b)
    folder = write_batches_folder(tmp_path / "tv" / "cifar-10-batches-py", tar.train_x.numpy(), tar.train_y.numpy(),
                                  tar.test_x.numpy(), tar.test_y.numpy())
    for source in (folder, folder.parent):
        batches = load_cifar10(source)
        assert batches.train_order == "original"
        for a, b in ((tar.train_x, batches.train_x), (tar.train_y, batches.train_y), (tar.test_x, batches.test_x),
                     (tar.test_y, batches.test_y)):
            assert torch.equal(a, b)


@needs_shared
def test_a_tree_without_train_files_is_in_class_then_file_order(tmp_path, cifar10n, members):
    names = [str(cifar10n.train_file[p]) for p in TRAIN_POS]
    tree = load_cifar10(_subset_tree(tmp_path, members, names))
    assert tree.train_order == "sorted"
    assert tree.train_y.tolist() == sorted(tree.train_y.tolist())


def test_missing_files_are_errors_that_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="labels.npz"):
        load_cifar10n(tmp_path / "labels.npz")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="test"):
        load_cifar10(tmp_path)


def test_symmetric_noise_flips_exactly_the_share_to_other_classes_uniformly():
    clean = torch.arange(50000) % 10
    noisy = exact_symmetric_noise(clean, 0.25, 10, seed=3)
    changed = noisy != clean
    assert int(changed.sum()) == int(0.25 * 50000)
    assert torch.equal(clean, torch.arange(50000) % 10)  # the input is not modified
    # Every flip moves to another class; the 9 others are drawn equally: a chi-square over the 90
    # (clean, noisy) cells, each row's flips split 9 ways (80 degrees of freedom: 130 is p ~ 4e-4).
    pairs = torch.bincount(clean[changed] * 10 + noisy[changed], minlength=100).view(10, 10).double()
    assert (pairs.diagonal() == 0).all()
    expected = (pairs.sum(1, keepdim=True) / 9).expand(10, 10)
    off = ~torch.eye(10, dtype=torch.bool)
    assert float(((pairs[off] - expected[off]) ** 2 / expected[off]).sum()) < 130
    assert not torch.equal(noisy, exact_symmetric_noise(clean, 0.25, 10, seed=4))
    assert torch.equal(noisy, exact_symmetric_noise(clean, 0.25, 10, seed=3))


def test_asymmetric_noise_moves_exactly_the_share_of_each_paired_class():
    clean = torch.arange(5003) % 10
    noisy = asymmetric_pairs_noise(clean, 0.4, seed=0)
    changed = noisy != clean
    for c in range(10):
        in_class = clean == c
        n_changed = int((changed & in_class).sum())
        if c in ASYMMETRIC_PAIRS:
            assert n_changed == int(0.4 * int(in_class.sum()))
            assert (noisy[changed & in_class] == ASYMMETRIC_PAIRS[c]).all()
        else:
            assert n_changed == 0
    assert {CLASSES[s]: CLASSES[t] for s, t in ASYMMETRIC_PAIRS.items()} == {
        "truck": "automobile", "bird": "airplane", "deer": "horse", "cat": "dog", "dog": "cat"}


@needs_shared
def test_label_sets_keep_their_clean_labels_and_check_the_join(cifar10n):
    pos = torch.tensor(TRAIN_POS)
    clean = cifar10n.clean[pos]
    for name in ("sym25", "asym40", "aggre", "random1", "random2", "random3", "worse", "clean"):
        s = make_label_set(name, clean, seed=0, cifar10n=cifar10n, index=pos)
        assert torch.equal(s.clean, clean) and s.labels.dtype == torch.int64 and len(s.labels) == len(pos)
    full = make_label_set("worse", cifar10n.clean, seed=0, cifar10n=cifar10n)
    assert abs(full.noise_rate - 0.4021) < 1e-3
    assert int(make_label_set("sym25", clean, seed=0).is_wrong.sum()) == int(0.25 * len(pos))
    with pytest.raises(ValueError, match="order"):
        make_label_set("aggre", clean.roll(1), seed=0, cifar10n=cifar10n, index=pos)
    with pytest.raises(ValueError, match="unknown"):
        make_label_set("random9", clean, seed=0, cifar10n=cifar10n, index=pos)
