"""The files a training run leaves beside its snapshots, in the official layout, so that a run
can be followed (``tail -f log.txt``), parsed by notebooks written for the official code, and
drawn (``sg3keras plot``).

- :mod:`sg3keras.runs.stats`: ``stats.jsonl`` (one JSON object per tick, every statistic as
  ``{"num", "mean", "std"}`` under its official name, plus ``timestamp``): the per-line atomic
  writer, the reader (:func:`~sg3keras.runs.stats.read_stats`), the resume truncation, and the
  ``metric-<name>.jsonl`` reader.
- :mod:`sg3keras.runs.logfile`: ``log.txt``, a tee of everything the run prints.
- :mod:`sg3keras.runs.curves`: the curves picture (losses, augment p, sec/kimg, metrics over
  kimg; several runs overlaid), needs matplotlib.

Floor 6: training (7), tools and the CLI import it; it imports only ``sg3keras.utils``.
"""

__all__ = ["stats", "logfile", "curves"]
