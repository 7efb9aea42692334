"""voicegender.threads: numpy's BLAS on one thread while models run, and back afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_blas_runs_on_one_thread_inside_the_block_and_as_before_after_it():
    """In a fresh process with OpenBLAS allowed 2 threads: 1 inside the block (in a worker thread too: the limit is
    the library's own setting, not the calling thread's), 2 again after it."""
    code = textwrap.dedent("""
        import json, threading
        import numpy as np
        from threadpoolctl import threadpool_info
        from voicegender.threads import blas_single_thread

        def blas_threads():
            return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

        np.ones((2, 2)) @ np.ones((2, 2))
        seen = {"before": blas_threads()}
        with blas_single_thread():
            seen["inside"] = blas_threads()
            worker = threading.Thread(target=lambda: seen.__setitem__("worker", blas_threads()))
            worker.start()
            worker.join()
        seen["after"] = blas_threads()
        print(json.dumps(seen))
    """)
    env = {"OPENBLAS_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"before": [2], "inside": [1], "worker": [1], "after": [2]}
