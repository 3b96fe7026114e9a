"""The ``sg3keras`` group and its error plumbing: every error is one ``Error: ...`` line on
stderr (a traceback only with ``--debug``), and TensorFlow's start-up log lines are hidden.

The one user-error type is :class:`UserError`: the CLI's own checks raise it, and a command's
``reports`` (failures the library explains in its own message) become one; click shows it.
"""

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

import click

# Quiet TensorFlow's C++ logging unless the user asked for it: their own TF_CPP_MIN_LOG_LEVEL
# (0 or 1 also shows the start-up lines), or --debug (level 1 and the start-up lines). Level 3
# also hides runtime notices TensorFlow logs as errors (e.g. oneDNN's "DT_INT64 only on
# platforms with AVX-512"); real failures still raise, and are reported as one line.
_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Commands that never import TensorFlow (no start-up import for them).
_NO_TENSORFLOW = {"dataset", "pretrained", "runs", "plot"}
# Start-up lines TensorFlow's C++ code writes to stderr before its log level is applied:
# absl's "not initialised" warning and I/W-level records (``I0000 00:00:...``) plus the
# continuation line of the CPU-feature notice.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                       r"[IW]\d{4} \d\d:\d\d:\d\d|To enable the following instructions)")


def _one_line(msg):
    """A message as one line: its non-blank lines joined with '; '."""
    return "; ".join(line.strip() for line in str(msg).splitlines() if line.strip())


class UserError(click.ClickException):
    """Something the user can fix: shown as one ``Error: ...`` line, exit status 1, never a
    traceback. ``message`` is a string or an exception whose text is the explanation."""

    def __init__(self, message):
        super().__init__(_one_line(message))


def _debug(ctx=None):
    """Whether tracebacks (and TensorFlow's start-up log) were asked for: ``--debug`` or
    ``SG3KERAS_DEBUG=1``."""
    root = ctx.find_root() if ctx is not None else None
    if root is not None and root.params.get("debug"):
        return True
    return os.environ.get("SG3KERAS_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _describe_error(e):
    """One line for an exception no command turned into a message itself."""
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    if isinstance(e, (ValueError, OSError)):
        return _one_line(e)
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    first = re.sub(r"^\{\{[^}]*\}\}\s*", "", first)     # TensorFlow's "{{function_node ...}}"
    wrapped = re.match(r"(DatasetError|CorruptImageError|ImageModeError|ValueError): (.+)", first)
    if wrapped:         # one of our errors, raised inside a tf.data / tf.numpy_function step
        return wrapped.group(2)
    return (f"{type(e).__name__}: {first} (unexpected; run with --debug or SG3KERAS_DEBUG=1 "
            "for the traceback)")


class _UsageError(click.UsageError):
    """A click usage error shown as one line (click's own shows usage and a hint as well)."""

    def __init__(self, e):
        super().__init__(_one_line(e.format_message()), e.ctx)

    def show(self, file=None):
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{hint}", file=file or sys.stderr)


@contextlib.contextmanager
def _errors_as_one_line(ctx=None):
    """Usage errors and unexpected exceptions become one ``Error: ...`` line (exit 2 / 1);
    with ``--debug`` an unexpected exception keeps its traceback."""
    try:
        yield
    except (_UsageError, click.exceptions.NoArgsIsHelpError):     # the latter shows the help
        raise
    except click.UsageError as e:
        raise _UsageError(e) from None
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except BrokenPipeError:
        # The reader went away (``sg3keras pretrained | head``): stop quietly, as a shell
        # tool does; later writes (the flush at exit) go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise click.exceptions.Exit(141) from None
    except Exception as e:
        if _debug(ctx):
            raise
        raise click.ClickException(_describe_error(e)) from None


@contextlib.contextmanager
def _tensorflow_noise_filtered():
    """Run the block with file descriptor 2 captured; then write back every line except
    TensorFlow's start-up noise (:data:`_TF_NOISE`)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(True)
                    if not _TF_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _import_tensorflow(ctx):
    """Import TensorFlow once, hiding its start-up log lines unless they were asked for."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    if _debug(ctx) and not _TF_LOG_LEVEL:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
    quiet = not (_TF_LOG_LEVEL in ("0", "1") or _debug(ctx))
    with _tensorflow_noise_filtered() if quiet else contextlib.nullcontext():
        import tensorflow  # noqa: F401


def _is_one_of(e, kinds):
    """Whether ``e`` is an instance of one of ``kinds``: classes, or dotted class names (for
    classes of modules that import TensorFlow, named without importing them)."""
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(e).__mro__}
    return any(k in names if isinstance(k, str) else isinstance(e, k) for k in kinds)


class _Command(click.Command):
    """A command run after TensorFlow's quiet import (unless :data:`_NO_TENSORFLOW`).

    ``reports``: exception types (or dotted names) beyond ValueError / OSError whose message
    is the explanation (e.g. a missing optional package); they become a :class:`UserError`
    with that message (with ``--debug``: the traceback)."""

    def __init__(self, *args, reports=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.reports = tuple(reports)

    def invoke(self, ctx):
        if self.name not in _NO_TENSORFLOW:
            _import_tensorflow(ctx)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if _debug(ctx) or not _is_one_of(e, self.reports):
                raise
            raise UserError(e) from None


class _Group(click.Group):
    """The ``sg3keras`` group: every error is one line on stderr, never a traceback (unless
    ``--debug``); TensorFlow's start-up log lines are hidden."""

    command_class = _Command

    def make_context(self, *args, **kwargs):
        with _errors_as_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _errors_as_one_line(ctx):
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"show_default": True})
@click.version_option(package_name="sg3keras")
@click.option("--debug", is_flag=True, envvar="SG3KERAS_DEBUG",
              help="Show the traceback of an error and TensorFlow's start-up log "
                   "(also: SG3KERAS_DEBUG=1)")
def main(debug):
    """StyleGAN3 for TensorFlow / Keras: train, generate, convert, measure, export.

    Every error is one line on stderr naming the file, flag or value and what was expected
    (exit status 1; 2 for a malformed command line).
    """
    import logging
    # tf.function retracing notices are expected here: every distinct layer geometry compiles
    # its own XLA kernels once.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
