"""Import MediaPipe without letting it keep the importing call stack alive.

`import mediapipe` imports all of MediaPipe Tasks' Python package, audio
included, and `mediapipe/tasks/python/audio/core/audio_record.py` tries
`import sounddevice`: where the PortAudio library is missing (servers, CI
images, this project's containers) it keeps the `OSError` in a module global,
`sd_error`, to raise when a recording starts. An exception keeps its traceback,
the traceback its frames, and each frame its caller (`f_back`), up to the
frame that imported MediaPipe first: in a run, the export of the process's first
model, and through it that run's model, data and search, alive as long as the
process and walked by every `gc.collect()` (after two wine runs, 11 Keras models
were alive through it; none once it was dropped). `load()` imports MediaPipe and
drops the tracebacks of the exceptions its modules keep; their messages stay, so
what they raise later still says what is missing.
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
            for value in list(getattr(module, "__dict__", {}).values()):
                if issubclass(type(value), BaseException):  # type(): a dead weak proxy raises on isinstance
                    forget_frames(value)
    return mediapipe


def forget_frames(error: BaseException) -> None:
    """Drop the tracebacks of `error` and of the exceptions it was raised from or during."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
