"""Visual tools that show alias-free generation (paper §1 and Figure 1, Figure 4c, Figure 13,
Appendix E). Each writes files;
the CLI wires them.

- :mod:`sg3keras.tools.video`: latent-interpolation videos (``gen_video.py`` semantics) and
  videos of a moving input transform (MP4, needs ``imageio`` + ``imageio-ffmpeg``).
- :mod:`sg3keras.tools.sticking`: texture-sticking diagnostics of the paper's Figure 1
  (neighbourhood average, interpolation strip).
- :mod:`sg3keras.tools.eqmap`: per-pixel equivariance error maps with the EQ metrics' PSNR.
- :mod:`sg3keras.tools.spectra`: average power spectra (``avg_spectra.py`` maths) and plots.
- :mod:`sg3keras.tools.layers_plot`: the per-layer frequency schedule (paper Figure 4c).

Submodules are imported on demand so that importing :mod:`sg3keras.tools` stays cheap; plots
need matplotlib (``sg3keras[viz]``).
"""

__all__ = ["video", "sticking", "eqmap", "spectra", "layers_plot"]
