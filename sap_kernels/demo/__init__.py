"""End-to-end demonstration of SAP on scikit-learn's bundled handwritten digits.

``python -m sap_kernels demo`` trains a small CNN on digits with noisy labels, repairs it with
:func:`sap_kernels.project`, and compares it with the fine-tune-on-trusted baseline and with a
model retrained on the clean labels. Needs scikit-learn (the ``demo`` extra).

Modules: ``data`` (splits), ``noise`` (label noise), ``models`` (the CNN), ``cifar_resnet`` (the CIFAR
ResNet of the CIFAR-10 reproduction and the benchmarks), ``train`` (training
loop and accuracy), ``baselines`` (fine-tune, retrain), ``experiment`` (one seed end to end),
``cli`` (the ``demo`` subcommand).
"""
