"""How ``project`` runs, decided from its resolved options before any work: the route to alpha,
and whether phases 1 and 2 share one pass over the loader.

Routes (``route``):

- ``"solve"``: one alpha for ``mode="sap"`` on the input side in one round: a float64 Cholesky
  solve per Gram straight from the statistics (``ops.gram_projection``), no spectrum (a layer that
  kept its rows, when cheaper that way: the dual decomposition);
- ``"eigh"``: the same with ``solver="eigh"`` (or ``alpha=inf``): each stream decomposed where
  its targets are projected, from the statistics;
- ``"spectra"``: one alpha of another variant (``mode``, ``location``, ``rounds``): every stream
  decomposed (``Statistics.decompose``), then projected from the spectra;
- ``"sweep"``: no alpha: decomposed once, alpha chosen on data (``choose_alpha``), the pick
  written with the projectors the sweep used.
"""
from __future__ import annotations

from typing import Optional

from .options.configs import Settings

ROUTES = ("solve", "eigh", "spectra", "sweep")


def route(s: Settings) -> str:
    """The route ``project`` takes to alpha and the projected weights (see the module docstring)."""
    if s.alpha is None:
        return "sweep"
    if (s.mode, s.location, s.rounds) != ("sap", "pre", 1):
        return "spectra"
    return "solve" if s.solve else "eigh"


def fuses_phases(s: Settings, *, needs_data: bool, distributed: bool, given: bool, size: Optional[int]) -> bool:
    """Whether ranking (phase 1) and the Grams (phase 2) share one pass over the loader.

    They do when every sample the loader yields is trusted anyway (``n_trusted`` is a count equal
    to the loader's ``size``, known without iterating it) and nothing else needs the ranking first:
    no training samples kept for choosing alpha (``needs_data``), no classifier head to find
    (``skip_head``), one process, no given clean samples, input side only. If the pass ends with
    fewer trusted samples than it saw (a loader shorter than its size said), ``collect`` runs after all.
    """
    every = isinstance(s.n_trusted, int) and size == s.n_trusted
    return (every and not needs_data and not s.skip_head and not distributed and not given
            and s.location == "pre")
