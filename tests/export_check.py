"""Load an exported SavedModel in a fresh process (TensorFlow + numpy only) and run it.

Usage: ``python tests/export_check.py REQUESTS.npz OUT_DIR MODEL=EXPORT_DIR [MODEL=DIR ...]``

``REQUESTS.npz`` keys are ``MODEL:CALL/INPUT`` where ``CALL`` is a signature name, optionally
with a ``#label`` suffix (several calls of one signature). Writes ``OUT_DIR/outputs.npz`` (keys
``MODEL:CALL/OUTPUT``) and ``OUT_DIR/report.json``: per model the signatures' input/output
specs, per-call errors, the graph's op types that are not registered in stock TensorFlow and
XLA markers; and the modules imported from this project (must be none).
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

XLA_OPS = {"XlaLaunch", "_XlaCompile", "_XlaRun", "XlaCallModule", "_XlaMerge",
           "XlaClusterOutput"}
XLA_ATTRS = {"_XlaMustCompile", "_XlaCompile", "_XlaScope", "_jit_compile", "jit_compile"}


def scan_graph(export_dir):
    """Op types not in the stock op registry, and XLA ops/attributes, over every meta graph's
    GraphDef including its function library."""
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    unregistered, xla, n_nodes, op_types = set(), set(), 0, set()
    for mg in sm.meta_graphs:
        lib = mg.graph_def.library
        fnames = {fd.signature.name for fd in lib.function}
        node_lists = [("graph", mg.graph_def.node)] + \
            [(fd.signature.name, fd.node_def) for fd in lib.function]
        for fd in lib.function:
            for key, val in fd.attr.items():
                if key in XLA_ATTRS and val.b:
                    xla.add(f"function {fd.signature.name}: attr {key}")
        for owner, nodes in node_lists:
            for node in nodes:
                n_nodes += 1
                op_types.add(node.op)
                if node.op in XLA_OPS:
                    xla.add(f"{owner}: op {node.op}")
                for key, val in node.attr.items():
                    if key in XLA_ATTRS and val.b:
                        xla.add(f"{owner}/{node.name}: attr {key}")
                if node.op not in fnames and op_def_registry.get(node.op) is None:
                    unregistered.add(node.op)
    return dict(unregistered=sorted(unregistered), xla=sorted(xla), nodes=n_nodes,
                op_types=sorted(op_types))


def spec_json(spec):
    shape = None if spec.shape.rank is None else [d for d in spec.shape.as_list()]
    return {"shape": shape, "dtype": spec.dtype.name}


def check_model(export_dir, calls, outputs, prefix):
    report = {"scan": scan_graph(export_dir), "signatures": {}, "errors": {}}
    loaded = tf.saved_model.load(export_dir)
    for name, fn in loaded.signatures.items():
        report["signatures"][name] = {
            "inputs": {k: spec_json(v) for k, v in fn.structured_input_signature[1].items()},
            "outputs": {k: spec_json(v) for k, v in fn.structured_outputs.items()}}
    for call, inputs in sorted(calls.items()):
        fn = loaded.signatures[call.split("#")[0]]
        try:
            result = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except Exception as e:  # noqa: BLE001  (the message is what the test checks)
            report["errors"][call] = f"{type(e).__name__}: {e}"
            continue
        for k, v in result.items():
            outputs[f"{prefix}:{call}/{k}"] = v.numpy()
    return report


def main(requests_path, out_dir, *models):
    requests = np.load(requests_path)
    calls = {}
    for key in requests.files:
        model, rest = key.split(":", 1)
        call, inp = rest.split("/", 1)
        calls.setdefault(model, {}).setdefault(call, {})[inp] = requests[key]
    outputs, report = {}, {"models": {}}
    for arg in models:
        alias, export_dir = arg.split("=", 1)
        report["models"][alias] = check_model(export_dir, calls.get(alias, {}), outputs, alias)
    report["project_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "sg3keras")
    os.makedirs(out_dir, exist_ok=True)
    np.savez(os.path.join(out_dir, "outputs.npz"), **outputs)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
