"""Worker supervision, in the front: ``pool`` owns the slots (start, ping, restart with backoff),
``process`` is the front's handle on one worker child (spawn, call, notice its death)."""
