"""Commands that render a network: generate, project, video."""

import os
import sys

import click

from sg3keras.cli._app import UserError, main
from sg3keras.cli.options import (check_output, class_option, default_of, load_network,
                                  network_option, outdir_option, parse_range, parse_vec2,
                                  seed_option, trunc_option)
from sg3keras.config import ProjectConfig
from sg3keras.inference.generate import check_class, generate_images, write_images
from sg3keras.tools.video import (render_transform_video, render_video, require_video_support,
                                  write_projection_video)


@main.command()
@network_option()
@click.option("--seeds", default=None, help="List of seeds, e.g. '0,1,4-6' [required unless "
              "--projected-w]")
@trunc_option()
@class_option()
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const",
              help="Noise inputs of StyleGAN2 networks (StyleGAN3 has none)")
@click.option("--translate", default="0,0", show_default=True, help="Translate XY, e.g. '0.3,1'")
@click.option("--rotate", type=float, default=0.0, show_default=True, help="Rotation in degrees")
@outdir_option("Output folder (seedNNNN.png files of the same name are replaced, as "
               "gen_images.py does)")
@click.option("--grid", is_flag=True, help="Write one grid.png instead of one PNG per seed")
@click.option("--projected-w", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Render the w's of a projected_w.npz (sg3keras project) as projNN.png")
def generate(network, seeds, truncation_psi, class_idx, noise_mode, translate, rotate, outdir,
             grid, projected_w):
    """Generate images (official gen_images.py flags and semantics)."""
    if projected_w:
        return _generate_projected(network, projected_w, outdir, noise_mode, seeds,
                                   truncation_psi)
    if seeds is None:
        raise UserError("Missing option '--seeds' (or give --projected-w)")
    seeds, translate = parse_range(seeds), parse_vec2(translate)
    check_output(outdir, "--outdir")
    images = generate_images(load_network(network), seeds, truncation_psi, class_idx, translate,
                             rotate, noise_mode)
    for p in write_images(images, seeds, outdir, grid=grid):
        click.echo(p)


def _generate_projected(network, projected_w, outdir, noise_mode, seeds, truncation_psi):
    """``generate --projected-w``: one projNN.png per w in the file (official semantics)."""
    from sg3keras.inference.projector import render_projected_w
    for flag, given in (("--seeds", seeds is not None), ("--trunc", truncation_psi != 1.0)):
        if given:
            click.echo(f"note: {flag} is ignored with --projected-w", err=True)
    paths, note = render_projected_w(load_network(network), projected_w, outdir, noise_mode)
    if note:
        click.echo(f"note: {note}", err=True)
    for p in paths:
        click.echo(p)


@main.command(reports=(FileNotFoundError, RuntimeError))
@network_option()
@click.option("--target", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Target image file (center-cropped and resized to the network's resolution)")
@outdir_option("Output folder (target.png, proj.png, projected_w.npz, proj.mp4 are replaced)")
@click.option("--num-steps", type=click.IntRange(min=1), default=ProjectConfig.num_steps,
              show_default=True, help="Optimization steps")
@seed_option("Seed of the w statistics' latents and of the noise draws")
@click.option("--save-video/--no-save-video", default=True, show_default=True,
              help="Write proj.mp4 (target beside each step's image)")
@click.option("--loss", type=click.Choice(["lpips", "mse"]), default="lpips", show_default=True,
              help="lpips: NVIDIA's VGG16 LPIPS; mse: pixel distance (offline)")
@click.option("--vgg16", default=None, help="Path or URL of NVIDIA's vgg16.pkl [default: "
              "detector search path, download cache, then NVIDIA's URL]")
@class_option()
def project(network, target, outdir, num_steps, seed, save_video, loss, vgg16, class_idx):
    """Project an image into W (stylegan2-ada-pytorch projector.py method)."""
    import contextlib

    from sg3keras.inference.projector import project as run, save_projection
    bar = click.progressbar(length=num_steps, label="Projecting", file=sys.stderr,
                            item_show_func=lambda d: None if d is None else f"dist {d:.4g}")
    if save_video:
        require_video_support()
    G = load_network(network)
    with contextlib.ExitStack() as stack:
        def progress(step, _, dist):
            if step == 0:
                stack.enter_context(bar)
            bar.update(1, dist)
        result = run(G, target, num_steps, loss, vgg16, seed, class_idx, progress=progress,
                     log=click.echo)
    paths = save_projection(G, result, outdir)
    if save_video:
        paths.append(write_projection_video(G, result, os.path.join(outdir, "proj.mp4")))
    for p in paths:
        click.echo(p)


def _grid(s):
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        w = h = 0
    if w < 1 or h < 1:
        raise click.BadParameter(f"expected WxH with W, H >= 1, e.g. 2x2, got {s!r}",
                                 param_hint="'--grid'")
    return w, h


_VIDEO = {name: default_of(render_video, name) for name in ("w_frames", "kind", "grid")}


@main.command(reports=(ImportError, RuntimeError))
@network_option()
@click.option("--seeds", default="0-3", show_default=True, help="Keyframe seeds, e.g. '0-31'")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="MP4 file (replaced if it exists, as gen_video.py does)")
@click.option("--grid", default="x".join(map(str, _VIDEO["grid"])), show_default=True,
              help="Grid of videos, WxH")
@click.option("--num-keyframes", type=click.IntRange(min=1), default=None,
              help="Keyframes per grid cell [default: the seeds divided among the cells]")
@click.option("--w-frames", type=click.IntRange(min=1), default=_VIDEO["w_frames"],
              show_default=True, help="Frames between keyframes")
@click.option("--kind", type=click.Choice(["linear", "nearest", "nearest-up", "zero", "slinear",
                                           "quadratic", "cubic", "previous", "next"]),
              default=_VIDEO["kind"],
              show_default=True, help="Interpolation kind (scipy interp1d)")
@trunc_option(default_of(render_video, "truncation_psi"))
@class_option()
@click.option("--shuffle-seed", type=int, default=None,
              help="Shuffle the keyframe seeds with this seed [default: no shuffle]")
@click.option("--translate-path", type=click.Choice(["none", "line", "circle"]), default=None,
              help="Instead of a latent walk: move the input translation (StyleGAN3)")
@click.option("--rotate-path", type=click.Choice(["none", "spin", "rock"]), default=None,
              help="Instead of a latent walk: rotate the input (StyleGAN3)")
@click.option("--frames", type=click.IntRange(min=1),
              default=default_of(render_transform_video, "frames"), show_default=True,
              help="Frames of a --translate-path / --rotate-path video")
def video(network, seeds, output, grid, num_keyframes, w_frames, kind, truncation_psi,
          class_idx, shuffle_seed, translate_path, rotate_path, frames):
    """Latent-interpolation video (official gen_video.py flags) or an input-transform video."""
    seeds, grid = parse_range(seeds), _grid(grid)
    check_output(output, "--output")
    G = load_network(network)
    class_idx = check_class(G, class_idx)
    if translate_path or rotate_path:
        render_transform_video(G, seeds[0], output, translate_path=translate_path or "none",
                               rotate_path=rotate_path or "none", frames=frames,
                               truncation_psi=truncation_psi, class_idx=class_idx)
    else:
        render_video(G, seeds, output, grid=grid, w_frames=w_frames,
                     num_keyframes=num_keyframes, kind=kind, truncation_psi=truncation_psi,
                     shuffle_seed=shuffle_seed, class_idx=class_idx)
    click.echo(output)
