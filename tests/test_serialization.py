"""Every serializable sg3keras class survives ``get_config`` -> ``from_config`` (and Keras's
``serialize_keras_object`` / ``deserialize_keras_object``) with an identical config."""

import importlib
import json
import pkgutil

import keras
import numpy as np
import pytest

import sg3keras


def _tiny_g():
    from sg3keras.models.generator import Generator
    return Generator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
                                 channel_max=16, z_dim=8, w_dim=8)


def _tiny_d(c_dim=0):
    from sg3keras.models.discriminator import Discriminator
    return Discriminator.from_preset("stylegan3-t", img_resolution=16, channel_base=256,
                                     channel_max=16, c_dim=c_dim)


def _gan():
    from sg3keras.config import TrainConfig
    from sg3keras.training.augment import AUGPIPE_SPECS, AugmentPipe
    from sg3keras.training.gan import StyleGAN
    G, D, G_ema = _tiny_g(), _tiny_d(), _tiny_g()
    return StyleGAN(G, D, G_ema, augment_pipe=AugmentPipe(**AUGPIPE_SPECS["bgc"]),
                    train_config=TrainConfig(batch=4), seed=3)


def _factories():
    from sg3keras.layers import (cmap, conv2d_layer, discriminator_blocks, fully_connected,
                                 mapping, stylegan2_synthesis, synthesis_input)
    from sg3keras.detectors import inception, vgg16
    from sg3keras.models.stylegan2_generator import StyleGAN2Generator
    from sg3keras.training.augment import AugmentPipe
    from sg3keras.runtime.optimizers import TorchAdam
    sg2 = lambda: StyleGAN2Generator.from_preset(  # noqa: E731
        "stylegan2", img_resolution=16, z_dim=8, w_dim=8, channel_base=256, channel_max=16,
        mapping_layers=2)
    return {
        "TF1BilinearResize": lambda: inception.TF1BilinearResize(size=(8, 8)),
        "InceptionConvBN": lambda: inception.InceptionConvBN(filters=4, kernel_size=(3, 3)),
        "ChannelMajorFlatten": lambda: vgg16.ChannelMajorFlatten(),
        "LPIPSTap": lambda: vgg16.LPIPSTap(4, epsilon=1e-10),
        "DiscriminatorBlock": lambda: discriminator_blocks.DiscriminatorBlock(0, 8, 16, 16, 3),
        "MinibatchStdLayer": lambda: discriminator_blocks.MinibatchStdLayer(group_size=2),
        "DiscriminatorEpilogue": lambda: discriminator_blocks.DiscriminatorEpilogue(
            16, resolution=4, img_channels=3),
        "SynthesisInput": lambda: synthesis_input.SynthesisInput(8, 4, 36, 16, 2, seed=1),
        "ConditioningMapping": lambda: cmap.ConditioningMapping(3, 8, num_layers=2),
        "Conv2dLayer": lambda: conv2d_layer.Conv2dLayer(4, 3, activation="lrelu", down=2),
        "FullyConnectedLayer": lambda: fully_connected.FullyConnectedLayer(4, lr_multiplier=0.5),
        "MappingNetwork": lambda: mapping.MappingNetwork(8, 0, 8, 4),
        "SynthesisLayer2": lambda: stylegan2_synthesis.SynthesisLayer2(4, 4, 8, 8, up=2),
        "ToRGBLayer": lambda: stylegan2_synthesis.ToRGBLayer(4, 3, 8),
        "SynthesisBlock2": lambda: stylegan2_synthesis.SynthesisBlock2(0, 4, 8, 4, 3, True),
        "SynthesisLayer": lambda: _tiny_g().synthesis.synthesis_layers[0],
        "SynthesisNetwork": lambda: _tiny_g().synthesis,
        "Generator": _tiny_g,
        "SynthesisNetwork2": lambda: sg2().synthesis,
        "StyleGAN2Generator": sg2,
        "Discriminator": lambda: _tiny_d(c_dim=3),
        "AugmentPipe": lambda: AugmentPipe(xflip=1, rotate=1, brightness=1),
        "TorchAdam": lambda: TorchAdam(learning_rate=0.0025, beta_1=0.0, beta_2=0.99),
        "StyleGAN": _gan,
    }


def _registered():
    for mod in pkgutil.walk_packages(sg3keras.__path__, "sg3keras."):
        if mod.name.endswith("__main__") or mod.name in ("sg3keras.cli", "sg3keras.demo") or \
                mod.name.startswith("sg3keras.cli."):
            continue
        importlib.import_module(mod.name)
    return sorted(k.split(">", 1)[1] for k in keras.saving.get_custom_objects()
                  if k.startswith("sg3keras>"))


def test_every_registered_class_is_covered():
    assert _registered() == sorted(_factories())


def _canon(config):
    return json.loads(json.dumps(config, sort_keys=True, default=str))


@pytest.mark.parametrize("name", sorted(_factories()))
def test_config_round_trip(name):
    obj = _factories()[name]()
    assert type(obj).__name__ == name
    config = obj.get_config()
    again = type(obj).from_config(config)
    assert type(again) is type(obj)
    assert _canon(again.get_config()) == _canon(config)
    ser = keras.saving.serialize_keras_object(obj)
    back = keras.saving.deserialize_keras_object(ser)
    assert type(back) is type(obj) and _canon(back.get_config()) == _canon(config)


def test_round_tripped_generator_computes_the_same_images():
    G = _tiny_g()
    z = np.random.RandomState(0).randn(2, 8).astype(np.float32)
    G2 = type(G).from_config(G.get_config())
    G2(z)
    for a, b in zip(G2.weights, G.weights):
        a.assign(b)
    np.testing.assert_array_equal(np.asarray(G2(z)), np.asarray(G(z)))
