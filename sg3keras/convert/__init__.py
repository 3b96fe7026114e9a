"""Conversion from the official (NVlabs) networks: state dicts and pickles, read as data.

Public entry points (loaded lazily, so that importing this package stays cheap):

* :func:`generator_from_official` (``sg3keras.convert.generator``)
* :func:`discriminator_from_official` (``sg3keras.convert.discriminator``)
* :func:`load_official_pickle` (``sg3keras.convert.official_pickle``)
* :func:`read_official_pickle` (``sg3keras.convert.pickle_reader``; numpy only, no Keras)
"""

import importlib

_EXPORTS = {
    "generator_from_official": "sg3keras.convert.generator",
    "discriminator_from_official": "sg3keras.convert.discriminator",
    "load_official_pickle": "sg3keras.convert.official_pickle",
    "read_official_pickle": "sg3keras.convert.pickle_reader",
    "stylegan2_generator_from_official": "sg3keras.convert.stylegan2",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sg3keras.convert' has no attribute {name!r}")
