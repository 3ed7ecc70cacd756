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
    python3 docs/regenerate.py --only T   # only the blocks whose command contains T

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
    argv = sys.argv[1:]
    list_only = "--list" in argv
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        if i + 1 >= len(argv):
            print("--only needs a text that the commands to rerun contain", file=sys.stderr)
            sys.exit(2)
        only = argv[i + 1]
        del argv[i : i + 2]
    unknown = [a for a in argv if a != "--list"]
    if unknown:
        print(f"unknown argument {unknown[0]!r}; expected nothing, --list or --only TEXT", file=sys.stderr)
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
            if only is not None and only not in args:
                continue
            print(f"{path.relative_to(ROOT)}: otpsim {args}", file=sys.stderr, flush=True)
            output, code = run(args)
            status = "" if code == 0 else f" It exited {code}."
            out.append(text[last : b.start()])
            # A markdown table is shown as a table, not as text.
            body = output if "--format markdown" in args else f"```text\n$ otpsim {args}\n{output}\n```"
            out.append(
                f"<!-- otpsim: {args} -->\n{body}\n"
                f"*Made by `otpsim {args}` on {today}.{status}*\n<!-- /otpsim -->"
            )
            last = b.end()
        out.append(text[last:])
        path.write_text("".join(out))


if __name__ == "__main__":
    main()
