"""ONNX Runtime's spinning intra-op threads on a loaded machine: one export, alternated.

    python -m benchmarks.ort_spinning EXPORT [--batch 1] [--repeats 6]

Times, call by call in one process (`benchmarks.infer.alternate`), the export's SavedModel
signature and its `model.onnx` on ONNX Runtime with `kzoo.infer.session_options` as is
(intra-op threads spin-wait between calls: onnxruntime's default
`session.intra_op.allow_spinning` = 1), with spinning off, and with spinning off on one
thread. When more threads want the cores than there are (other work on the machine),
spinning threads burn the time slices the runtime that follows them needs.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ort_spinning", description=__doc__.split("\n\n")[0])
    p.add_argument("export", help="an exported version (SavedModel + model.onnx)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args(argv)
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    from benchmarks.infer import alternate
    from kzoo.card import sample_inputs
    from kzoo.infer import _sample_size, find_version, read_info, session_options

    version = find_version(args.export)
    info = read_info(version)
    feeds = sample_inputs(info["inputs"], args.batch, np.random.default_rng(0), size=_sample_size(info))

    def session(spin, threads=None):
        opts = session_options(threads=threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        return ort.InferenceSession(str(version / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    sessions = {"ort": session(True), "ort_no_spinning": session(False),
                "ort_no_spinning_1_thread": session(False, 1)}
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    tf_feeds = {k: tf.constant(v) for k, v in feeds.items()}
    load = os.getloadavg()[0]
    fns = {"savedmodel": lambda: signature(**tf_feeds),
           **{k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}}
    ms = alternate(fns, args.repeats, 1)
    print(f"{version} batch {args.batch}, 1-minute load {load:.1f} on {os.cpu_count()} cores: "
          + ", ".join(f"{k} {v:.0f} ms" for k, v in ms.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
