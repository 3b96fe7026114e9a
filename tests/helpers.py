"""Helpers several test files share (torch is imported only by the helpers that use it)."""

import functools
import os
import subprocess
import sys

import numpy as np

from refdata import nchw_to_nhwc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "sg3keras.cli"]


def run_cli(*args, env=None):
    """``sg3keras ARGS`` in this process (click's ``CliRunner``; arguments made strings).

    The result has ``exit_code``, ``stdout`` and ``stderr`` apart, ``output`` (both) and
    ``exception``; ``env``: variables set for the run."""
    from click.testing import CliRunner

    from sg3keras.cli import main
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def run_cli_process(*args, env=None, cwd=ROOT, timeout=300):
    """``python -m sg3keras.cli ARGS`` in a fresh process (what only a real process shows:
    TensorFlow's start-up lines, another working directory, a process that trains).

    A text ``subprocess.CompletedProcess`` (``returncode``, ``stdout``, ``stderr``); ``env``
    defaults to this environment with TensorFlow's C++ log quiet (TF_CPP_MIN_LOG_LEVEL=3)."""
    if env is None:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(CLI + [str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def close_to_official(got, want, atol):
    """Asserts that ``got`` (NHWC) equals the official NCHW ``want`` within ``atol``."""
    got, want = np.asarray(got), nchw_to_nhwc(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


@functools.lru_cache(maxsize=None)
def _torch_defs():
    import torch
    import torch.nn.functional as F

    def tf1_resize(x: torch.Tensor, size: int) -> torch.Tensor:
        """TF1 legacy bilinear resize via affine_grid/grid_sample (offset 1/in - 1/out)."""
        n, c, h, w = x.shape
        theta = torch.zeros([n, 2, 3], dtype=x.dtype)
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = 1.0 / w - 1.0 / size
        theta[:, 1, 2] = 1.0 / h - 1.0 / size
        grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    class Layers(torch.nn.Module):
        def __init__(self, conv_names, fc_dim, num_classes):
            super().__init__()
            cin = 3
            for name, cout in conv_names:
                setattr(self, name, torch.nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
            self.fc1 = torch.nn.Linear(cin * 49, fc_dim)
            self.fc2 = torch.nn.Linear(fc_dim, fc_dim)
            self.fc3 = torch.nn.Linear(fc_dim, num_classes)

    class VGG16(torch.nn.Module):
        def __init__(self, conv_names, lpips_taps, fc_dim, num_classes, tf1, lpips):
            super().__init__()
            self.layers = Layers(conv_names, fc_dim, num_classes)
            self.tf1 = tf1
            for k, conv in enumerate(lpips_taps):
                cout = dict(conv_names)[conv]
                init = torch.rand if lpips == "rand" else torch.ones
                self.register_buffer(f"lpips{k}", init([1, cout, 1, 1]))
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

        def _tap(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            x = x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            x = x * w.sqrt() / float(x.shape[2] * x.shape[3]) ** 0.5
            return x.flatten(1)

        def forward(self, img: torch.Tensor, resize_images: bool = True,
                    return_lpips: bool = False) -> torch.Tensor:
            x = img.to(torch.float32)
            if resize_images:
                if self.tf1:
                    x = tf1_resize(x, 224)
                else:
                    x = F.interpolate(x, size=(224, 224), mode="area")
            x = (x / 255 - self.mean) / self.std
            L = self.layers
            x = F.relu(L.conv2(F.relu(L.conv1(x))))
            t0 = x
            x = F.relu(L.conv4(F.relu(L.conv3(F.max_pool2d(x, 2)))))
            t1 = x
            x = F.relu(L.conv7(F.relu(L.conv6(F.relu(L.conv5(F.max_pool2d(x, 2)))))))
            t2 = x
            x = F.relu(L.conv10(F.relu(L.conv9(F.relu(L.conv8(F.max_pool2d(x, 2)))))))
            t3 = x
            x = F.relu(L.conv13(F.relu(L.conv12(F.relu(L.conv11(F.max_pool2d(x, 2)))))))
            t4 = x
            if return_lpips:
                return torch.cat([self._tap(t0, self.lpips0), self._tap(t1, self.lpips1),
                                  self._tap(t2, self.lpips2), self._tap(t3, self.lpips3),
                                  self._tap(t4, self.lpips4)], dim=1)
            x = F.max_pool2d(x, 2).flatten(1)
            return F.relu(L.fc2(F.relu(L.fc1(x))))

    return tf1_resize, VGG16


def torch_tf1_resize():
    """The TF1 legacy bilinear resize, ``(x: NCHW torch tensor, size: int) -> tensor``, as a
    function that ``torch.jit.script`` compiles."""
    return _torch_defs()[0]


def torch_vgg16(widths, fc_dim, num_classes, seed, resize="area", lpips="rand"):
    """A torch VGG16 (eval mode) with the tensor names and the ``forward(img, resize_images,
    return_lpips)`` described for NVIDIA's ``vgg16.pkl``: conv trunk ``layers.conv1`` ..
    ``conv13`` of the five group ``widths``, ``layers.fc1`` .. ``fc3`` (``fc_dim`` features,
    ``num_classes`` outputs), LPIPS weights ``lpips0`` .. ``lpips4`` (uniform random or ones),
    ImageNet ``mean`` / ``std`` buffers. ``resize``: ``"area"`` or ``"tf1"`` (the TF1 legacy
    bilinear resize) to 224 x 224. Weights drawn after ``torch.manual_seed(seed)``."""
    import torch

    from sg3keras.detectors import vgg16

    _, VGG16 = _torch_defs()
    torch.manual_seed(seed)
    return VGG16(vgg16.conv_names(widths), vgg16.LPIPS_TAPS, fc_dim, num_classes,
                 resize == "tf1", lpips).eval()
