"""The ``sap-kernels`` command line (``python -m sap_kernels``), built on typer.

``sap_kernels.cli.app`` assembles the commands: ``project`` (``sap_kernels.cli.project``),
``issues`` (``sap_kernels.cli.issues``, reusing ``project``'s options), ``report`` and ``demo``
(``sap_kernels.demo.cli``). ``import sap_kernels`` never imports this package, so the library
itself does not need typer.
"""
