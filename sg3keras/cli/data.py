"""Commands that prepare files: dataset (official dataset_tool.py), convert, pretrained."""

import difflib
import json

import click

from sg3keras.cli._app import UserError, main
from sg3keras.cli.options import check_output


@main.command()
@click.argument("src")
@click.argument("dest", type=click.Path())
@click.option("--network", "which", type=click.Choice(["G_ema", "G", "D"]), default="G_ema",
              help="Which network of the pickle to convert")
@click.option("--all", "all_", is_flag=True, help="Write DEST/<G|D|G_ema>.keras for each network")
@click.option("--force", is_flag=True, help="Replace existing .keras files")
def convert(src, dest, which, all_, force):
    """Convert an official NVIDIA pickle into .keras file(s), without executing its code.

    SRC is the .pkl (a file, a pretrained name or an http(s) URL); DEST the .keras file (with
    --all: a folder).
    """
    from sg3keras.convert.official_pickle import convert_pickle
    from sg3keras.networks.pretrained import resolve_network_file
    check_output(dest, "DEST")
    src = resolve_network_file(src, flag="SRC")
    for p in convert_pickle(src, dest, networks=("G", "D", "G_ema") if all_ else (which,),
                            force=force):
        click.echo(p)


@main.command()
@click.argument("names", nargs=-1)
def pretrained(names):
    """List NVIDIA's pretrained networks (usable by name wherever --network or --resume takes a
    network), or download NAMES into the cache ($SG3KERAS_CACHE, default ~/.cache/sg3keras)."""
    from sg3keras.networks.pretrained import list_pretrained, resolve_network_file
    if not names:
        for name, cfg, res, url, path in list_pretrained():
            click.echo(f"{name:32s} {cfg:12s} {res:5d}  {'cached' if path else url}")
        return
    known = {row[0] for row in list_pretrained()}
    for name in names:
        if name.removesuffix(".pkl") not in known:
            close = difflib.get_close_matches(name.removesuffix(".pkl"), known, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UserError(f"{name} is not a pretrained network name ({hint}`sg3keras "
                            "pretrained` lists them)")
        click.echo(resolve_network_file(name, flag="pretrained"))


@main.command()
@click.option("--source", required=True, type=click.Path(exists=True),
              help="Folder (searched recursively) or .zip of images, optionally with a "
                   "dataset.json of labels")
@click.option("--dest", required=True, type=click.Path(),
              help="Output .zip, or a folder that is absent or empty")
@click.option("--resolution", type=click.IntRange(min=1), default=None,
              help="Output resolution R (R x R, a power of two) [default: the images' own size]")
@click.option("--transform", type=click.Choice(["center-crop", "center-crop-wide"]), default=None,
              help="Crop before resizing (needs --resolution) [default: resize only]")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Convert only the first N images [default: all]")
@click.option("--skip-bad", is_flag=True,
              help="Skip (and name) unreadable images, images not 'L'/'RGB', and images whose "
                   "size or channel count differs from the first")
@click.option("--force", is_flag=True, help="Replace an existing --dest .zip")
def dataset(source, dest, resolution, transform, max_images, skip_bad, force):
    """Write an official-format dataset (zip of PNGs + dataset.json).

    Nothing is written if an image fails (unless --skip-bad): errors name the file.
    """
    from sg3keras.data.dataset_tool import convert_dataset
    from sg3keras.training.checkpoint import STORAGE_ERRNOS
    try:
        summary = convert_dataset(source, dest, resolution=resolution, transform=transform,
                                  max_images=max_images, skip_bad=skip_bad, force=force)
    except OSError as e:        # a write's error names no file (a full or read-only disk)
        if e.errno in STORAGE_ERRNOS and not e.filename:
            raise OSError(e.errno, e.strerror, dest) from e
        raise
    for s in summary["skipped"]:
        click.echo(f"skipped {s['file']}: {s['reason']}", err=True)
    click.echo(json.dumps(summary, indent=2, default=str))
