"""Aggregating crowd labels: one algorithm per module, scikit-learn style.

Every aggregator takes long-format annotations — parallel arrays ``task``, ``worker`` and
``label`` (or ``value``), one entry per annotation, any hashable ids — and ``fit`` returns
the aggregator with fitted attributes ending in ``_``. Bad input raises ``ValueError``
naming the column.
"""

from .bradley_terry import BradleyTerry
from .dawid_skene import DawidSkene
from .majority import MajorityVote
from .scale import RaterBiasCorrectedMean

__all__ = ["BradleyTerry", "DawidSkene", "MajorityVote", "RaterBiasCorrectedMean"]
