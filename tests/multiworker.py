"""Helpers for tests that run a MultiWorkerMirroredStrategy cluster of worker processes on
127.0.0.1, each under ``timeout -s KILL`` (a multi-worker process can block forever)."""

import json
import os
import signal
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def start(script_args, env=None, timeout=600):
    """``python SCRIPT ARGS...`` under ``timeout -s KILL``; stdout+stderr piped, text mode.

    GNU ``timeout`` puts itself and the command in a new process group whose id is
    ``proc.pid``: :func:`kill_group` ends both."""
    cmd = ["timeout", "-s", "KILL", str(timeout), sys.executable, *map(str, script_args)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def start_workers(script_args, n=2, timeout=600, **env):
    """``n`` workers of one cluster on free 127.0.0.1 ports (extra environment in ``env``)."""
    ports = free_ports(n)
    return [start(script_args, env=dict(ENV, TF_CONFIG=tf_config(ports, i), **env),
                  timeout=timeout) for i in range(n)]


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
