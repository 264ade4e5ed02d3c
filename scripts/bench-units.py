#!/usr/bin/env python3
"""Helpers of scripts/bench-restore-jobs.sh: where a restore's time goes, unit by unit.

  bench-units.py server-cpu PID       CPU seconds of the postmaster PID and all its children
                                      (those that exited, reaped into its cutime/cstime, and
                                      those still running): the whole server's CPU so far.
  bench-units.py client-cpu FILE      the children's user+sys seconds from bash's `times`.
  bench-units.py units DIR NAME...    from DIR/NAME.K.log (server logs written with
                                      log_min_duration_statement=0 and log_line_prefix
                                      '%m#%p#'), one table: each unit of work (a table's COPY
                                      statements, an index, a key, a foreign key, the rest)
                                      with its server time per contender, median over the runs.
"""
import collections
import datetime
import glob
import os
import re
import statistics
import sys

LINE = re.compile(r"(\S+ \S+) \S+#(\d+)#LOG:  duration: ([\d.]+) ms  statement: (.*)")


def server_cpu(pm):
    def fields(pid):
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()

    a = fields(pm)
    ticks = sum(int(x) for x in a[11:15])
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            b = fields(p)
        except OSError:
            continue
        if b[1] == pm:
            ticks += sum(int(x) for x in b[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def client_cpu(path):
    # bash `times`: the shell's own line, then its children's: "0m1.234s 0m0.567s"
    lines = open(path).read().split("\n")
    total = 0.0
    for t in lines[1].split():
        m, s = t.rstrip("s").split("m")
        total += int(m) * 60 + float(s)
    return total


def unit(stmt):
    """The unit of work a statement belongs to, or None for the rest."""
    s = " ".join(stmt.split())
    m = re.match(r"COPY (\S+)", s)
    if m and "FROM stdin" in s:
        return "COPY " + m.group(1)
    m = re.match(r"CREATE (?:UNIQUE )?INDEX (\S+)", s)
    if m:
        return "INDEX " + m.group(1)
    m = re.search(r"ADD CONSTRAINT (\S+) (PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK|EXCLUDE)", s)
    if m:
        return ("FK " if m.group(2) == "FOREIGN KEY" else "KEY ") + m.group(1)
    return None


def read_log(path):
    """[(start, end, pid, statement)] of one server log, statements joined across lines."""
    rows = []
    cur = None
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if m:
            end = datetime.datetime.fromisoformat(m.group(1)).timestamp()
            d = float(m.group(3)) / 1000
            cur = [end - d, end, m.group(2), m.group(4)]
            rows.append(cur)
        elif cur is not None and line[:1] in ("\t", " "):
            cur[3] += " " + line.strip()
        else:
            cur = None
    return rows


def one_run(path):
    """unit -> (seconds, start offset), and the totals of one run."""
    rows = read_log(path)
    if not rows:
        return {}, {}
    t0 = min(r[0] for r in rows)
    units = {}
    rest = 0.0
    for s, e, _pid, q in rows:
        u = unit(q)
        if u is None:
            rest += e - s
            continue
        sec, start = units.get(u, (0.0, 1e18))
        units[u] = (sec + e - s, min(start, s - t0))
    totals = {
        "all statements, summed": sum(e - s for s, e, _p, _q in rows),
        "the rest (schema, SET, sequences …)": rest,
        "first statement to last, wall": max(r[1] for r in rows) - t0,
    }
    return units, totals


def units(d, names):
    per = {}
    tot = {}
    for n in names:
        runs = [one_run(p) for p in sorted(glob.glob(os.path.join(d, "%s.*.log" % n)))]
        runs = [r for r in runs if r[0]]
        if not runs:
            continue
        keys = set().union(*(r[0].keys() for r in runs))
        per[n] = {
            k: (statistics.median(r[0].get(k, (0.0, 0.0))[0] for r in runs),
                statistics.median(r[0].get(k, (0.0, 0.0))[1] for r in runs))
            for k in keys
        }
        tot[n] = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
    names = [n for n in names if n in per]
    if not names:
        print("(no server logs)")
        return
    keys = set().union(*(per[n].keys() for n in names))
    # the units that cost most first; small ones (under 0.05 s everywhere) summed in one row
    order = sorted(keys, key=lambda k: -max(per[n].get(k, (0, 0))[0] for n in names))
    big = [k for k in order if max(per[n].get(k, (0, 0))[0] for n in names) >= 0.05]
    small = [k for k in order if k not in big]
    print("| unit | " + " | ".join("%s s (starts at)" % n for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for k in big:
        cells = []
        for n in names:
            v = per[n].get(k)
            cells.append("%.2f (%.1f)" % v if v else "-")
        print("| %s | %s |" % (k, " | ".join(cells)))
    if small:
        print("| %d smaller units | %s |" % (len(small), " | ".join(
            "%.2f" % sum(per[n].get(k, (0, 0))[0] for k in small) for n in names)))
    for k in tot[names[0]]:
        print("| %s | %s |" % (k, " | ".join("%.2f" % tot[n][k] for n in names)))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "server-cpu":
        print("%.2f" % server_cpu(sys.argv[2]))
    elif cmd == "client-cpu":
        print("%.2f" % client_cpu(sys.argv[2]))
    elif cmd == "units":
        units(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("unknown command " + cmd)
