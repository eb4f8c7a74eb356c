"""Child process of tests/test_checkpoint.py: TELLME's batch loop on a tiny random model with checkpoints.

    python tests/_checkpoint_child.py RUN_DIR OUT_FILE [KILL_AT_FORWARD]

With KILL_AT_FORWARD = k the process SIGKILLs itself when the model's k-th forward starts (a real kill:
no cleanup, no atexit). Otherwise it writes the statistics and the resumed position to OUT_FILE.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from diag_helpers import char_tokenizer, random_chats, tiny_llama

from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.diagnostics.tellme import collect_last_token
from deepsight.models.anatomy import inspect_model


def main() -> None:
    run_dir, out = sys.argv[1], sys.argv[2]
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    torch.manual_seed(0)
    model = tiny_llama(layers=3, dtype=torch.float32)
    tok = char_tokenizer()
    chats = random_chats(41, 2, torch.Generator().manual_seed(1), max_len=30)
    calls = [0]

    def maybe_die(module, args):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    model.register_forward_pre_hook(maybe_die)
    ckpt = ScanCheckpoint.for_scan(run_dir, "tellme", every=2)
    rows, gram = collect_last_token(model, tok, inspect_model(model), chats, 1, max_batch_size=3,
                                    max_batch_tokens=4096, checkpoint=ckpt)
    plain_rows, plain_gram = collect_last_token(model, tok, inspect_model(model), chats, 1, max_batch_size=3,
                                                max_batch_tokens=4096)  # no checkpointing at all
    torch.save({"rows": rows, "gram": gram.state_dict(), "plain_rows": plain_rows,
                "plain_gram": plain_gram.state_dict(), "resumed_from": ckpt.resumed_from, "position": ckpt.position},
               out)


if __name__ == "__main__":
    main()
