# otpsim's pause for Python apps (docs/targets.md, "Requests that arrive
# together"). A target that puts "{pause_python}" on PYTHONPATH and sets
# OTPSIM_PAUSE_MS gets this file imported at interpreter start: every call
# the app's own code makes (to its functions, to the database driver, to
# Flask) first sleeps that long. Sleeping releases the GIL, so a request
# that arrived a few microseconds after another runs its next step while
# the first waits: a check-then-act inside one process opens as wide as
# the pause. The app's code is not changed and its order is not chosen:
# last-byte release decides who starts first, the pause lets the rest meet.
import os
import sys


def _install(pause_s):
    import threading
    import time

    # "The app's code" is what the interpreter did not bring: not under its
    # prefixes (stdlib, dist-packages, a venv's site-packages), not frozen.
    roots = tuple(sorted({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}))
    here = os.path.realpath(__file__)
    known = {}

    def is_app(filename):
        mine = known.get(filename)
        if mine is None:
            real = os.path.realpath(filename)
            mine = not filename.startswith("<") and not real.startswith(roots) and real != here
            known[filename] = mine
        return mine

    sleep = time.sleep

    def pause(frame, event, arg):
        # A C call's frame is its caller's; a Python call's caller is one up.
        caller = frame if event == "c_call" else frame.f_back if event == "call" else None
        # Module-level code is the app starting, not a request: paused, two
        # instances creating one schema hold SQLite's lock from each other.
        if caller is None or caller.f_code.co_name == "<module>":
            return
        if is_app(caller.f_code.co_filename):
            sleep(pause_s)

    sys.setprofile(pause)
    threading.setprofile(pause)


def _chain():
    # Another sitecustomize further along the path (a distribution's own)
    # still runs: this file only shadows it.
    here = os.path.dirname(os.path.realpath(__file__))
    for folder in sys.path:
        candidate = os.path.join(folder or ".", "sitecustomize.py")
        if os.path.realpath(folder or ".") != here and os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                code = compile(f.read(), candidate, "exec")
            exec(code, {"__name__": "sitecustomize", "__file__": candidate})
            return


_ms = os.environ.get("OTPSIM_PAUSE_MS", "0")
try:
    _ms = float(_ms)
except ValueError:
    sys.stderr.write(f"otpsim pause: OTPSIM_PAUSE_MS={_ms!r} is not a number of milliseconds; no pause\n")
    _ms = 0.0
if _ms > 0:
    _install(_ms / 1000.0)
_chain()
