"""Helpers several test files share."""

import os
import subprocess
import sys

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
