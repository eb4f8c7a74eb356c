"""Ground-floor helpers every layer may use; this package imports nothing else from deepsight.

- ``atomic.py``: ``atomic_write_text`` (temporary file + rename: no half-written files);
- ``jsonable.py``: ``to_jsonable`` (tensors, numpy values, paths, non-finite floats -> JSON values);
- ``progress.py``: ``track`` (a progress bar on a terminal, silent otherwise);
- ``scrub.py``: ``scrub_secrets`` / ``scrub_text`` (the one secret scrubber for everything a run writes).
"""
