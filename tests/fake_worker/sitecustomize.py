"""Test harness: the engine worker process with a scripted model instead of llama.cpp.

Put this folder first on PYTHONPATH and set LLAMA_TUI_FAKE_WORKER=1: a
``python -m tui.engine.local.host FD`` process then runs the real worker loop
(socket, command thread, cancels, queue) with :class:`ScriptedRunner` doing
the model's part, so tests can hold the app in any state for as long as
they need, which the real model (loaded in about a second) does not allow.

- Loading waits until the file named by LLAMA_TUI_FAKE_LOAD_GATE exists, and
  ignores cancels meanwhile, like llama.cpp inside a long call: the app must
  cope with a worker that does not stop when asked.
- A message containing "long" is answered without end (until cancelled);
  any other with five words.
"""

from __future__ import annotations

import os
import sys
import time

if os.environ.get("LLAMA_TUI_FAKE_WORKER") == "1" and "tui.engine.local.host" in sys.orig_argv:
    from tui.core.engine_protocol import (
        GenerationFinished,
        GenerationStarted,
        ModelInfo,
        ModelLoading,
        ModelReady,
        TokenText,
    )
    from tui.engine.local import host as worker

    class ScriptedRunner(worker.ModelRunner):
        def load(self, request):  # type: ignore[override]
            self.send(ModelLoading(request.path, 0.0))
            gate = os.environ.get("LLAMA_TUI_FAKE_LOAD_GATE", "")
            while gate and not os.path.exists(gate):
                time.sleep(0.05)
            self.request = request
            self.info = ModelInfo(request.path, "scripted", request.n_ctx, request.n_ctx, True)
            self.send(ModelReady(self.info, 0.0))
            return True

        def generate(self, job):  # type: ignore[override]
            self.send(GenerationStarted(job.job_id, 10, 4096, 0, "chat"))
            endless = "long" in job.history[-1].content
            text, count, reason = "", 0, "stop"
            while endless or count < 5:
                if self.cancelled(job.job_id):
                    reason = "cancelled"
                    break
                piece = f" word{count}"
                text += piece
                count += 1
                self.send(TokenText(job.job_id, piece))
                time.sleep(0.02)
            self.send(GenerationFinished(job.job_id, text.strip(), reason, count, 1.0, 10, 4096))

        def close(self) -> None:
            pass

    worker.ModelRunner = ScriptedRunner  # type: ignore[misc]
    try:
        worker.main(sys.orig_argv[sys.orig_argv.index("tui.engine.local.host") + 1 :])
    finally:
        sys.stderr.flush()
        os._exit(0)
