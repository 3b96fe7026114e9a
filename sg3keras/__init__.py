"""sg3keras: StyleGAN3 for TensorFlow 2 / Keras 3.

Package map (docs/PAPER.md maps the paper to the code; docs/CONTRIBUTING.md says which file a
new line belongs in): ``ops`` -> ``layers`` -> ``models`` -> ``convert`` / ``training`` /
``metrics`` / ``inference`` / ``data`` -> ``export``, ``tools`` -> ``cli``.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Modules that moved in 0.2; the old paths keep working for one release, with a warning.
_MOVED = {
    "sg3keras.augment": "sg3keras.training.augment",
    "sg3keras.dataset_tool": "sg3keras.data.dataset_tool",
    "sg3keras.demo_data": "sg3keras.data.demo",
    "sg3keras.networks": "sg3keras.inference.networks",
    "sg3keras.generate": "sg3keras.inference.generate",
}


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module's old name as its new module (the same object)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = _MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old name will be removed in the next "
                      "release", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


if not any(isinstance(f, _MovedModule) for f in sys.meta_path):
    sys.meta_path.append(_MovedModule())
