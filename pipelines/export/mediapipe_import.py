"""Import MediaPipe without letting it keep the importing call stack alive.

`import mediapipe` imports all of MediaPipe Tasks' Python package, audio
included, and `mediapipe/tasks/python/audio/core/audio_record.py` tries
`import sounddevice`: where the PortAudio library is missing (servers, CI
images, this project's containers) it keeps the `OSError` in a module global,
`sd_error`, to raise when a recording starts. An exception keeps its traceback,
the traceback its frames, and each frame its caller (`f_back`), up to the
frame that imported MediaPipe first: in a run, the export of the process's first
model, and through it that run's model, data and search. They stayed alive as
long as the process, and every `gc.collect()` walked them (keras-tuner collects
before it builds each model): runs in one Python process grew slower and larger
(on wine, six 30-second runs: the step from the search's last trial to its
saved choice took 3.2 s, then 4.4 s, 50 MB more each run). `load()` imports
MediaPipe and drops the tracebacks of the exceptions its modules keep; their
messages stay, so what they raise later still says what is missing.
"""

from __future__ import annotations

import sys
import types

PACKAGE = "mediapipe"


def load() -> types.ModuleType:
    """`mediapipe`, imported, with no module of it holding a traceback (so no frame of its importer)."""
    import mediapipe

    for name, module in list(sys.modules.items()):
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            for value in list(vars(module).values()):
                if isinstance(value, BaseException):
                    forget_frames(value)
    return mediapipe


def forget_frames(error: BaseException) -> None:
    """Drop the tracebacks of `error` and of the exceptions it was raised from or during."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
