#!/usr/bin/env python3
"""Applies each mutant cargo-mutants missed and runs the root package's
corpus and core's sequential flow tests (tests/flows/sequential.rs) against it (cargo-mutants cannot take
the root package as its test package). Prints one line a mutant."""
import json, subprocess, sys, os
if len(sys.argv) != 3:
    print("usage: python3 docs/mutants_survivors.py MUTANTS_OUT REPO", file=sys.stderr)
    sys.exit(2)
out = sys.argv[1]  # mutants.out directory
repo = sys.argv[2]
data = json.load(open(os.path.join(out, "outcomes.json")))
missed = [o for o in data["outcomes"] if o.get("summary") == "MissedMutant"]
killed = 0
for o in missed:
    diff = os.path.abspath(os.path.join(out, o["diff_path"]))
    m = o["scenario"]["Mutant"]
    label = m["name"]
    # The diff's "+++" line is a description, not a path: name the file.
    subprocess.run(["patch", "-s", "-d", repo, m["file"], "-i", diff], check=True)
    try:
        ok = True
        for cmd in (["cargo", "test", "-q", "-p", "otpsim-sim", "--test", "corpus"],
                    ["cargo", "test", "-q", "-p", "otpsim-core", "--test", "flows", "sequential::"],
                    ["cargo", "test", "-q", "-p", "otpsim-model", "--lib"]):
            r = subprocess.run(cmd, cwd=repo, capture_output=True, timeout=900)
            if r.returncode != 0:
                ok = False
                break
        verdict = "survives" if ok else "KILLED by " + " ".join(cmd[5:])
        killed += 0 if ok else 1
    except subprocess.TimeoutExpired:
        verdict = "KILLED (timeout)"
        killed += 1
    finally:
        subprocess.run(["patch", "-s", "-R", "-d", repo, m["file"], "-i", diff], check=True)
    print(f"{verdict}: {label}", flush=True)
print(f"{killed} of {len(missed)} missed mutants killed by the corpus, core's sequential flow tests or the model's unit tests")
