"""pipelines.export.mediapipe_import: importing MediaPipe keeps no frame of its importer, nor what that frame held."""

import gc
import json
import subprocess
import sys
import textwrap
import weakref

import pytest

from pipelines.export.mediapipe_import import forget_frames

# Runs in a fresh interpreter (this one may have imported MediaPipe already): a function that holds an object imports
# MediaPipe, plainly or through `load()`, and returns; is the object still alive, and does a MediaPipe module keep an
# exception?
FIRST_IMPORT = textwrap.dedent("""
    import gc, json, sys, weakref

    class Held:
        pass

    def first_import():
        held = Held()
        if sys.argv[1] == "load":
            from pipelines.export.mediapipe_import import load
            load()
        else:
            import mediapipe
        return weakref.ref(held)

    held = first_import()
    gc.collect()
    keeps = any(issubclass(type(value), BaseException) for name, module in list(sys.modules.items())
                if name.startswith("mediapipe") for value in list(vars(module).values()))
    print(json.dumps({"alive": held() is not None, "keeps_exception": keeps}))
""")


class Held:
    pass


def _kept_error():
    """An error raised from a frame holding a `Held`, during the handling of another: the shape of audio_record's."""
    held = Held()
    try:
        try:
            raise ImportError("no sounddevice")
        except ImportError:
            raise OSError("PortAudio library not found")
    except OSError as error:
        return error, weakref.ref(held)


def test_forget_frames_frees_what_the_raising_frames_held_and_keeps_the_message():
    error, held = _kept_error()
    gc.collect()
    assert held() is not None  # the traceback keeps the frame, the frame its locals
    forget_frames(error)
    gc.collect()
    assert held() is None
    assert str(error) == "PortAudio library not found" and str(error.__context__) == "no sounddevice"
    assert error.__traceback__ is None and error.__context__.__traceback__ is None


def _first_import(how: str) -> dict:
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT, how], capture_output=True, text=True, timeout=120,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_load_lets_the_importers_locals_go():
    plain = _first_import("plain")
    if not plain["keeps_exception"]:
        pytest.skip("no MediaPipe module keeps an exception here (sounddevice found PortAudio): nothing to free")
    assert plain["alive"]  # a plain first import keeps its importer's locals alive: what load() is for
    loaded = _first_import("load")
    assert not loaded["alive"]
    assert loaded["keeps_exception"]  # the exceptions stay (their messages), without their frames
