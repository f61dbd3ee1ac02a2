"""CIFAR-10 and its label sets, as users have them: torchvision's ``cifar-10-batches-py`` folder, an
image-folder tree (``train/<class>/*.jpg``, ``test/<class>/*.jpg``) or that tree as a ``.tar.gz``;
the CIFAR-10N human label sets joined in the original training order; and label noise as the SAP
paper defines it (an exact share flipped). Used by ``python/cifar10.py``; nothing here downloads.
"""
from .cifar10 import CLASSES, Cifar10, load_cifar10
from .cifar10n import CIFAR10N_SETS, Cifar10N, load_cifar10n
from .noise import ASYMMETRIC_PAIRS, LabelSet, asymmetric_pairs_noise, exact_symmetric_noise, make_label_set
from .paths import shared_cifar10_dir

__all__ = [
    "ASYMMETRIC_PAIRS", "CIFAR10N_SETS", "CLASSES", "Cifar10", "Cifar10N", "LabelSet", "asymmetric_pairs_noise",
    "exact_symmetric_noise", "load_cifar10", "load_cifar10n", "make_label_set", "shared_cifar10_dir",
]
