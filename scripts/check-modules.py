#!/usr/bin/env python3
"""The module rules of src/ (issue 19), checked by .ci/run:

1. No two top-level modules import each other, directly or through others (a cycle): every
   `crate::NAME` in a file of module A is an edge A -> NAME.
2. Only src/child.rs starts processes (`.spawn()`, `.output()`, `.status()` of a Command).

Prints each cycle or spawn it finds and exits 1; exits 0 when there is none.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
NOT_MODULES = {"Error", "Result", "Secret", "Shutdown", "hex", "format_bytes", "parse_size"}


def top_module(path):
    rel = os.path.relpath(path, SRC).replace(os.sep, "/")
    first = rel.split("/")[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def main():
    edges = {}
    spawns = []
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            mod = top_module(path)
            if mod in ("main", "lib"):
                continue
            text = strip_comments(open(path, encoding="utf-8").read())
            # `#[cfg(test)] mod tests` may use anything.
            text = text.split("#[cfg(test)]")[0]
            names = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
            for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
                names |= {g.strip().split("::")[0] for g in group.split(",")}
            for n in names:
                if n and n != mod and n not in NOT_MODULES:
                    edges.setdefault(mod, set()).add(n)
            if mod != "child":
                for i, line in enumerate(text.splitlines(), 1):
                    if re.search(r"\.(spawn|output|status)\(\)", line) and not re.search(
                        r"thread::spawn|tokio::spawn|task::spawn|\.status\(\)\.as_u16|raw_response",
                        line,
                    ):
                        spawns.append(f"{os.path.relpath(path, SRC)}:{i}: {line.strip()}")
    cycles = []
    for a in sorted(edges):
        # Depth-first search for a path back to a.
        stack = [(b, [a, b]) for b in sorted(edges[a])]
        seen = set()
        while stack:
            node, path = stack.pop()
            if node == a:
                cycles.append(" -> ".join(path))
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend((n, path + [n]) for n in sorted(edges.get(node, ())))
    for c in sorted(set(cycles)):
        print(f"import cycle: {c}")
    for s in spawns:
        print(f"a process started outside src/child.rs: {s}")
    if cycles or spawns:
        return 1
    print(f"modules: no import cycle among {len(edges)} modules; processes start only in child.rs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
