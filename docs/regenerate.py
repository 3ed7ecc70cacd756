#!/usr/bin/env python3
"""Reruns every command block of README.md and docs/findings.md.

A block is written as

    <!-- otpsim: check scenarios/seed_incident.toml -->
    ```text
    $ otpsim check scenarios/seed_incident.toml
    ...output...
    ```
    *Made by `otpsim check scenarios/seed_incident.toml` on 2026-12-01.*
    <!-- /otpsim -->

and this script replaces everything between the two markers with the
command's output now, run through `cargo run --release` from the
repository's root, and today's date. Usage:

    python3 docs/regenerate.py            # rewrite the blocks in place
    python3 docs/regenerate.py --list     # only name the commands

A command that exits non-zero is kept (check exits 1 when an expectation
fails, explore when something broke), but its exit code is written under
the block so that nobody mistakes it for a clean run.
"""

import datetime
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", ROOT / "docs" / "findings.md"]
BLOCK = re.compile(r"^<!-- otpsim: (?P<args>.+?) -->\n(?P<body>.*?)^<!-- /otpsim -->", re.S | re.M)
# Exit codes a command may end with and still be shown: 0, and 1 for "found
# something", which is what these commands are run to show.
SHOWN = {0, 1}


def run(args: str) -> tuple[str, int]:
    argv = ["cargo", "run", "--release", "--locked", "--quiet", "--"] + shlex.split(args)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in SHOWN:
        print(f"`otpsim {args}` exited {done.returncode}:\n{done.stderr}", file=sys.stderr)
        sys.exit(2)
    return done.stdout.rstrip("\n"), done.returncode


def main() -> None:
    list_only = "--list" in sys.argv[1:]
    unknown = [a for a in sys.argv[1:] if a != "--list"]
    if unknown:
        print(f"unknown argument {unknown[0]!r}; expected nothing or --list", file=sys.stderr)
        sys.exit(2)
    today = datetime.date.today().isoformat()
    for path in FILES:
        text = path.read_text()
        blocks = list(BLOCK.finditer(text))
        if list_only:
            for b in blocks:
                print(f"{path.relative_to(ROOT)}: otpsim {b['args']}")
            continue
        out, last = [], 0
        for b in blocks:
            args = b["args"]
            print(f"{path.relative_to(ROOT)}: otpsim {args}", file=sys.stderr, flush=True)
            output, code = run(args)
            status = "" if code == 0 else f" It exited {code}."
            out.append(text[last : b.start()])
            out.append(
                f"<!-- otpsim: {args} -->\n```text\n$ otpsim {args}\n{output}\n```\n"
                f"*Made by `otpsim {args}` on {today}.{status}*\n<!-- /otpsim -->"
            )
            last = b.end()
        out.append(text[last:])
        path.write_text("".join(out))


if __name__ == "__main__":
    main()
