"""``sg3keras visualize``: the official interactive visualizer's views in a local web page.

:mod:`~sg3keras.visualize.render` draws one validated request (latent, input transform, any
layer's channels or spectrum, equivariance); :mod:`~sg3keras.visualize.queue` renders on one
worker thread, newest request first; :mod:`~sg3keras.visualize.server` serves the page
(``static/``: plain HTML, JavaScript and CSS, no build step) with the standard library's
``http.server``.
"""
