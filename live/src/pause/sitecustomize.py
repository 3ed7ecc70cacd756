# otpsim's pause for Python apps (docs/targets.md, "A pause before each of
# the app's steps"). A target that puts "{pause_python}" on PYTHONPATH gets
# this file imported at interpreter start, and the harness sets
# OTPSIM_PAUSE_MS: every call the app's own code makes (to its functions,
# to the database driver, to the framework) first sleeps that long.
# Sleeping releases the GIL, so a request that arrived a few microseconds
# after another runs its next step while the first waits: a check-then-act
# inside one process opens as wide as the pause. The app's code is not
# changed and its order is not chosen: last-byte release decides who starts
# first, the pause lets the rest meet.
import os
import sys


def _install(pause_s):
    import site
    import sysconfig
    import threading
    import time

    # "The app's own code" is what the interpreter did not bring: not the
    # standard library, not an installed package (dist-packages, a venv's
    # or the user's site-packages), not frozen, not this file.
    paths = sysconfig.get_paths()
    brought = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    brought += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    brought += [site.getusersitepackages()] if hasattr(site, "getusersitepackages") else []
    # A venv made with --system-site-packages sees the base's packages too.
    brought += site.getsitepackages([sys.base_prefix]) if hasattr(site, "getsitepackages") else []
    # What the harness's own PYTHONPATH named (a pip --target folder, say).
    brought += [p for p in os.environ.get("OTPSIM_PAUSE_INHERITED", "").split(os.pathsep) if p]
    roots = tuple(sorted({os.path.realpath(p) + os.sep for p in brought if p}))
    here = os.path.realpath(__file__)
    known = {}

    def is_app(code):
        mine = known.get(code.co_filename)
        if mine is None:
            name = code.co_filename
            real = os.path.realpath(name)
            mine = not name.startswith("<") and not real.startswith(roots) and real != here
            known[name] = mine
        return mine

    sleep = time.sleep
    optimized = 0x1  # CO_OPTIMIZED: a function's frame, not a module's or a class body's

    def pause(frame, event, arg):
        # A C call's frame is its caller's; a Python call's caller is one up.
        caller = frame if event == "c_call" else frame.f_back if event == "call" else None
        # Module and class bodies run while the app starts, not in a request:
        # pausing them would only slow every start.
        if caller is None or not caller.f_code.co_flags & optimized:
            return
        if is_app(caller.f_code):
            sleep(pause_s)

    sys.setprofile(pause)
    threading.setprofile(pause)
    # Said once, by the first process: an app's own Python children inherit
    # the pause, and some apps read a child's stderr as its failure.
    if sys.stderr is not None and not os.environ.get("OTPSIM_PAUSE_SAID"):
        os.environ["OTPSIM_PAUSE_SAID"] = "1"
        sys.stderr.write(f"otpsim pause: {pause_s * 1000:g} ms before each call of the app's own code (pid {os.getpid()})\n")


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
    if sys.stderr is not None:
        sys.stderr.write(f"otpsim pause: OTPSIM_PAUSE_MS={_ms!r} is not a number of milliseconds; no pause\n")
    _ms = 0.0
if _ms > 0:
    _install(_ms / 1000.0)
_chain()
