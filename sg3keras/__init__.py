"""sg3keras: StyleGAN3 for TensorFlow 2 / Keras 3.

Package map (docs/PAPER.md maps the paper to the code; docs/CONTRIBUTING.md says which file a
new line belongs in), floor by floor, each importing only from the floors below it:
``utils``, ``config`` -> ``ops``, ``data`` -> ``layers``, ``losses`` -> ``models`` -> ``convert``,
``runtime`` -> ``networks``, ``detectors`` -> ``inference``, ``metrics`` -> ``training``,
``tools``, ``export`` -> ``demo`` -> ``cli``.
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
    "sg3keras.generate": "sg3keras.inference.generate",
    # Strict floors: runtime, detectors and networks below training, metrics and inference.
    "sg3keras.inference.networks": "sg3keras.networks.loading",
    "sg3keras.inference.pretrained": "sg3keras.networks.pretrained",
    "sg3keras.training.optimizers": "sg3keras.runtime.optimizers",
    "sg3keras.metrics.detectors": "sg3keras.detectors.loading",
    "sg3keras.metrics.inception": "sg3keras.detectors.inception",
    "sg3keras.metrics.vgg16": "sg3keras.detectors.vgg16",
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


# ---------------------------------------------------------------------------------------------
# Keras serialization: `import sg3keras` is enough for `keras.saving.load_model("net.keras")`,
# without importing Keras (and TensorFlow) here. Keras looks registered classes up by name
# ("sg3keras>Generator") in `keras.src.saving.object_registration.GLOBAL_CUSTOM_OBJECTS`; that dict
# is replaced by one that imports the registering modules on the first miss of an sg3keras name.

_REGISTRY_MODULE = "keras.src.saving.object_registration"
# Modules whose classes carry @keras.saving.register_keras_serializable(package="sg3keras"),
# lightest first (tests/test_init.py checks that this list is complete).
REGISTERING_MODULES = (
    "sg3keras.layers", "sg3keras.models", "sg3keras.training.augment",
    "sg3keras.runtime.optimizers", "sg3keras.training.gan", "sg3keras.detectors.inception",
    "sg3keras.detectors.vgg16",
)


class _LazyRegistry(dict):
    """``GLOBAL_CUSTOM_OBJECTS`` that registers sg3keras's classes when one is first asked for."""

    def _miss(self, key):
        if not (isinstance(key, str) and key.startswith("sg3keras>")):
            return False
        for name in REGISTERING_MODULES:
            if dict.__contains__(self, key):
                break
            importlib.import_module(name)
        return True

    def __contains__(self, key):
        if not dict.__contains__(self, key) and self._miss(key):
            return dict.__contains__(self, key)
        return dict.__contains__(self, key)

    def __getitem__(self, key):
        if not dict.__contains__(self, key):
            self._miss(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def _install_registry(module):
    if not isinstance(module.GLOBAL_CUSTOM_OBJECTS, _LazyRegistry):
        module.GLOBAL_CUSTOM_OBJECTS = _LazyRegistry(module.GLOBAL_CUSTOM_OBJECTS)


class _RegistryHook(importlib.abc.MetaPathFinder):
    """Installs :class:`_LazyRegistry` right after Keras creates its registry module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _REGISTRY_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_and_install(module, _exec=exec_module):
                    _exec(module)
                    _install_registry(module)

                spec.loader.exec_module = exec_and_install
                return spec
        return None


if _REGISTRY_MODULE in sys.modules:
    _install_registry(sys.modules[_REGISTRY_MODULE])
elif not any(isinstance(f, _RegistryHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegistryHook())
