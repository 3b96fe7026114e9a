"""Conversion from the official (NVlabs) networks: state dicts and pickles, read as data.

Public entry points (loaded lazily, so that importing this package stays cheap):

* :func:`generator_from_official` (``sg3keras.convert.generator``)
* :func:`discriminator_from_official` (``sg3keras.convert.discriminator``)
* :func:`load_official_pickle` (``sg3keras.convert.official_pickle``)
* :func:`read_official_pickle` (``sg3keras.convert.pickle_reader``; numpy only, no Keras)
"""

from sg3keras.utils import lazy_exports

_EXPORTS = {
    "generator_from_official": "sg3keras.convert.generator",
    "discriminator_from_official": "sg3keras.convert.discriminator",
    "load_official_pickle": "sg3keras.convert.official_pickle",
    "read_official_pickle": "sg3keras.convert.pickle_reader",
    "stylegan2_generator_from_official": "sg3keras.convert.stylegan2",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
