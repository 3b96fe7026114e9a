"""``sg3keras visualize``: the interactive visualizer in a local web page."""

import click

from sg3keras.cli._app import main
from sg3keras.cli.options import NETWORK_HELP


@main.command()
@click.option("--network", "networks", multiple=True, required=True,
              help=f"{NETWORK_HELP}; repeat it to switch between networks in the page (the "
                   "page opens only these); a training run follows its newest snapshot")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; another than 127.0.0.1 prints a warning: the page "
                   "has no authentication")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free port)")
@click.option("--bf16", is_flag=True, default=False,
              help="Render StyleGAN3 networks with bfloat16 compute (Keras mixed_bfloat16, "
                   "float32 weights): faster on CPUs with avx512_bf16 or AMX, slightly "
                   "different pixels; a warning elsewhere [default: float32]")
def visualize(networks, host, port, bf16):
    """Interactive visualizer in the browser: latent, truncation, style mixing, input
    translate/rotate, any layer's channels and spectrum, equivariance maps.

    Renders on this machine's CPU (or GPU); no display needed. From a remote or headless
    machine, an SSH tunnel is all you need: run `ssh -L 8000:127.0.0.1:8000 host` on your
    computer and open http://127.0.0.1:8000/ there.
    """
    from sg3keras.visualize.server import serve
    serve(list(networks), host=host, port=port, bf16=bf16,
          log=lambda s: click.echo(s, err=s.startswith("warning")))
