#!/usr/bin/env python3
"""hack/bench-report.py RUN_DIR MD SVG [--splice RESULTS]: the table, markdown and chart of one
hack/bench.sh run.

Reads what hack/bench.sh left in RUN_DIR (hyperfine JSON per case, runtime and round;
/usr/bin/time -v output; strace -c summaries; CRIU's logs; meta and skipped lists), prints
the table, writes MD (markdown) and SVG (a bar chart drawn here, no plotting library).
The checkpoint case is a section of its own (between the CK_BEGIN and CK_END lines), with
its own date and machine: when this run has no checkpoint data, MD keeps the section the
file already has; --splice RESULTS replaces (or adds) that section in RESULTS with this run's.
"""
import glob
import html
import json
import os
import re
import statistics
import sys

rd, md_path, svg_path = sys.argv[1:4]
splice_path = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--splice" else None

ORDER = ["tong", "crun", "runc", "youki", "floor"]
COLORS = {"tong": "#e8590c", "crun": "#1c7ed6", "runc": "#2f9e44", "youki": "#9c36b5", "floor": "#868e96"}
CASES = [
    ("run", "`run` /bin/true"),
    ("run+seccomp", "`run` /bin/true, podman's seccomp profile"),
    ("run+seccomp-cold", "the same, tong's program cache emptied before each run"),
    ("lifecycle", "`create` + `start` + `delete`"),
    ("exec", "`exec` /bin/true into a running container"),
    ("throughput", "containers `run`, 2 at a time: time for all"),
    ("list@1", "`list`, 1 container alive"),
    ("list@100", "`list`, 100 containers alive"),
    ("list@400", "`list`, 400 containers alive"),
    ("state@1", "`state` of one, 1 container alive"),
    ("state@400", "`state` of one, 400 containers alive"),
]


def read_meta():
    meta = {}
    with open(os.path.join(rd, "meta")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    return meta


meta = read_meta()
skipped = []
with open(os.path.join(rd, "skipped")) as f:
    skipped = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
# "checkpoint R": runtime R has no checkpoint figures (n/a in that section, not skipped at all)
ck_na = [(r.split(" ", 1)[1], why) for r, why in skipped if r.startswith("checkpoint ")]
skipped = [(r, why) for r, why in skipped if not r.startswith("checkpoint ")]


def rkey(r):
    return ORDER.index(r) if r in ORDER else len(ORDER)


# times[case][runtime] = list of seconds; parts[runtime] = {command: [seconds]};
# ck[runtime][cycle] = (checkpoint, restore) seconds
times, parts, tp_n, ck, criu_start = {}, {}, None, {}, []
for path in sorted(glob.glob(os.path.join(rd, "json", "*.json"))):
    case, r, _round = os.path.basename(path)[:-5].rsplit("-", 2)
    results = json.load(open(path))["results"]
    if case == "ckpt":
        ck.setdefault(r, {})[int(_round)] = tuple(x["times"][0] for x in results)
    elif case == "criu-start":
        criu_start.extend(results[0]["times"])
    elif case == "lifecycle":
        n = min(len(x["times"]) for x in results)
        sums = [sum(x["times"][i] for x in results) for i in range(n)]
        times.setdefault(case, {}).setdefault(r, []).extend(sums)
        for x in results:
            parts.setdefault(r, {}).setdefault(x["command"].split()[-1], []).extend(x["times"])
    else:
        times.setdefault(case, {}).setdefault(r, []).extend(results[0]["times"])
        if case == "throughput":
            tp_n = int(results[0]["command"].split("x run")[0].split()[-1])
if not ck:  # no checkpoint section from this run: its runtimes' reasons go with the others
    skipped += [(f"checkpoint {r}", why) for r, why in ck_na]


def stats(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt_t(s):
    if s >= 1:
        return f"{s:.2f} s"
    ms = s * 1e3
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def ratio(v, base):
    return f"{v / base:.2f}" if base else "–"


rows = []  # (case label, runtime, median, min, max, ratio, n)
for case, label in CASES:
    if case not in times:
        continue
    if case == "throughput" and tp_n:
        label = f"{tp_n} {label}"
    crun = statistics.median(times[case]["crun"]) if "crun" in times[case] else None
    for r in sorted(times[case], key=rkey):
        med, lo, hi = stats(times[case][r])
        rows.append((case, label, r, med, lo, hi, ratio(med, crun), len(times[case][r])))

# peak RSS (kB) per runtime
rss = {}
for path in glob.glob(os.path.join(rd, "rss", "*.txt")):
    r = os.path.basename(path).rsplit("-", 1)[0]
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    if m:
        rss.setdefault(r, []).append(int(m.group(1)))
sizes = {k[5:]: tuple(int(x) for x in v.split()) for k, v in meta.items() if k.startswith("size ")}


def strace_summary(r):
    path = os.path.join(rd, f"strace-{r}.txt")
    if not os.path.exists(path):
        return None
    calls, total = [], None
    for line in open(path):
        t = line.split()
        if len(t) < 5 or not re.match(r"^\d+\.\d+$", t[0]):
            continue
        pct, sec, n = float(t[0]), float(t[1]), int(t[3])
        errs = int(t[4]) if len(t) == 6 else 0
        if t[-1] == "total":
            total = (n, errs, sec)
        else:
            calls.append((pct, t[-1], n))
    return total, sorted(calls, reverse=True)[:5]


runtimes = sorted({r for c in times.values() for r in c if r != "floor"}, key=rkey)

# ------------------------------------------------------------------ stdout table
print()
print(f"{'case':<14} {'runtime':<7} {'median':>10} {'min':>10} {'max':>10} {'x crun':>7}  runs")
for case, _label, r, med, lo, hi, rat, n in rows:
    print(f"{case:<14} {r:<7} {fmt_t(med):>10} {fmt_t(lo):>10} {fmt_t(hi):>10} {rat:>7}  {n}")
crun_rss = statistics.median(rss["crun"]) if "crun" in rss else None
for r in runtimes:
    if r in rss:
        med, lo, hi = stats(rss[r])
        size = sizes.get(r, (0, 0))[0]
        print(f"{'peak RSS':<14} {r:<7} {med / 1024:>7.1f} MiB {lo / 1024:>6.1f} MiB {hi / 1024:>6.1f} MiB "
              f"{ratio(med, crun_rss):>7}  binary {size / 2**20:.1f} MiB")
for r, why in skipped:
    print(f"skipped {r}: {why}")

# ------------------------------------------------------------------ markdown
md = []
md.append("# Benchmark results")
md.append("")
md.append(f"Written by `hack/bench.sh` on {meta.get('date', '?')}; a full run took "
          f"{int(meta.get('duration', 0)) // 60} min {int(meta.get('duration', 0)) % 60} s. "
          "Chart: [bench-results.svg](bench-results.svg).")
md.append("")
md.append(f"- machine: {meta.get('machine', '?')}")
md.append(f"- cgroups: {meta.get('cgroups', '?')}")
md.append(f"- load average (1, 5, 15 min) before: {meta.get('load_before', '?')}, after: {meta.get('load_after', '?')}")
try:
    busy = max(float(meta["load_before"].split()[0]), float(meta["load_after"].split()[0]))
    ncpu = int(re.search(r"(\d+) CPUs", meta["machine"]).group(1))
    if busy >= ncpu / 2:
        md.append(f"- **the host was busy** (load average up to {busy:.1f} on {ncpu} CPUs, other work running "
                  "beside the benchmark): expect noise; compare ratios within this run, not with other runs")
except (KeyError, ValueError, AttributeError):
    pass
md.append(f"- {meta.get('settings', '')}")
for r in runtimes:
    v = meta.get(f"version {r}", "?")
    extra = f" ({meta['tong']})" if r == "tong" and meta.get("tong") else ""
    md.append(f"- {r}: {v}{extra}")
for r, why in skipped:
    md.append(f"- **skipped {r}**: {why}")
md.append("")
if rows:
    md.append("Median, min and max over all runs; `x crun` is the median over crun's median in the same run "
              "(below 1.00 is faster than crun). `floor` is `unshare -fmpnui /bin/true`: new namespaces "
              "and a process, no runtime.")
    md.append("")
    md.append("| case | runtime | median | min | max | x crun |")
    md.append("|---|---|---:|---:|---:|---:|")
    last = None
    for case, label, r, med, lo, hi, rat, n in rows:
        name = label if case != last else ""
        last = case
        b = "**" if r == "tong" else ""
        md.append(f"| {name} | {b}{r}{b} | {b}{fmt_t(med)}{b} | {fmt_t(lo)} | {fmt_t(hi)} | {b}{rat}{b} |")
    md.append("")
if parts:
    md.append("`create` + `start` + `delete`, median of each command:")
    md.append("")
    md.append("| runtime | create | start | delete |")
    md.append("|---|---:|---:|---:|")
    for r in sorted(parts, key=rkey):
        p = parts[r]
        md.append(f"| {r} | " + " | ".join(fmt_t(statistics.median(p[c])) for c in ("create", "start", "delete") if c in p) + " |")
    md.append("")
if rss:
    md.append("Memory and size: peak RSS of `run` (`/usr/bin/time -v`: the runtime and the children it waits "
              "for), size of the executable and the shared libraries it loads:")
    md.append("")
    md.append("| runtime | peak RSS median | min | max | x crun | executable | shared libraries |")
    md.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in runtimes:
        if r not in rss:
            continue
        med, lo, hi = stats(rss[r])
        size, libs = sizes.get(r, (0, 0))
        b = "**" if r == "tong" else ""
        md.append(f"| {b}{r}{b} | {b}{med / 1024:.1f} MiB{b} | {lo / 1024:.1f} MiB | {hi / 1024:.1f} MiB | "
                  f"{b}{ratio(med, crun_rss)}{b} | {size / 2**20:.1f} MiB | {libs} |")
    md.append("")
# The issues' targets, computed from this run (speed issue: run, lifecycle, exec at or
# below crun and at most a third of runc, peak RSS at or below crun; seccomp issue: run with
# podman's profile within 1.2x of tong's own run and at most half of crun's).
def med(case, r):
    return statistics.median(times[case][r]) if case in times and r in times[case] else None


checks = []
for case in ("run", "lifecycle", "exec"):
    t, c, rc = med(case, "tong"), med(case, "crun"), med(case, "runc")
    if t and c:
        checks.append((f"{case}: tong / crun = {t / c:.2f}", t <= c))
    if t and rc:
        checks.append((f"{case}: tong / runc = {t / rc:.2f} (at most 0.33)", t <= rc / 3))
t, c = med("list@400", "tong"), med("list@400", "crun")
if t and c:
    checks.append((f"list at 400 containers: tong / crun = {t / c:.2f}", t <= c))
if "tong" in rss and crun_rss:
    t = statistics.median(rss["tong"])
    checks.append((f"peak RSS: tong / crun = {t / crun_rss:.2f}", t <= crun_rss))
ts, tr, cs = med("run+seccomp", "tong"), med("run", "tong"), med("run+seccomp", "crun")
if ts and tr:
    checks.append((f"run+seccomp: tong / tong's run = {ts / tr:.2f} (at most 1.2)", ts <= 1.2 * tr))
if ts and cs:
    checks.append((f"run+seccomp: tong / crun = {ts / cs:.2f} (at most 0.5)", ts <= 0.5 * cs))
if checks:
    md.append("Targets (from the speed and seccomp-speed issues), in this run:")
    md.append("")
    for what, ok in checks:
        md.append(f"- {'met' if ok else '**not met**'}: {what}")
    md.append("")
    print()
    for what, ok in checks:
        print(f"{'met    ' if ok else 'NOT MET'} {what}")

st = {r: strace_summary(r) for r in runtimes}
if any(st.values()):
    md.append("System calls of one `run` (`strace -f -c`, all processes; strace's own overhead "
              "makes these times useless as latencies, the counts and shares are what matter):")
    md.append("")
    md.append("| runtime | syscalls | failed | top 5 by system time |")
    md.append("|---|---:|---:|---|")
    for r in runtimes:
        s = st.get(r)
        if not s or not s[0]:
            continue
        (n, errs, _sec), top = s
        md.append(f"| {r} | {n} | {errs} | " + ", ".join(f"{name} {pct:.0f}%" for pct, name, _ in top) + " |")
    md.append("")
# The pod case: containerd's CRI plugin with one handler per runtime (hack/e2e/cri.sh's bench
# step, cri-e2e bench); pod.json holds every run's milliseconds per RPC.
pod_path = os.path.join(rd, "pod.json")
if os.path.exists(pod_path):
    pod = json.load(open(pod_path))
    phases, pruns = pod["phases"], pod["runs"]
    n_start = 3
    def pmed(r, sel):
        return statistics.median(sum(run[i] for i in sel) for run in pruns[r])
    hs = sorted(pruns, key=rkey)
    base = "crun" if "crun" in pruns else hs[0]
    start = {r: pmed(r, range(n_start)) for r in hs}
    down = {r: pmed(r, range(n_start, len(phases))) for r in hs}
    runs_n = min(len(v) for v in pruns.values())
    md.append(f"Pod start through Kubernetes' path (`hack/e2e/cri.sh`'s bench step: a private containerd "
              f"{meta.get('containerd', '')} with its CRI plugin, the runc v2 shim, one runtime handler per "
              f"runtime, the locally built pause and busybox images, a CNI bridge): RunPodSandbox + "
              f"CreateContainer + StartContainer of a busybox shell, then the teardown, StopContainer + "
              f"StopPodSandbox + RemovePodSandbox; {runs_n} runs per handler, taking turns. Medians; "
              f"`x {base}` as above.")
    md.append("")
    md.append(f"| handler | pod start | x {base} | teardown | x {base} |")
    md.append("|---|---:|---:|---:|---:|")
    for r in hs:
        b = "**" if r == "tong" else ""
        md.append(f"| {b}{r}{b} | {b}{start[r]:.1f} ms{b} | {b}{start[r] / start[base]:.2f}{b} | "
                  f"{down[r]:.1f} ms | {down[r] / down[base]:.2f} |")
    md.append("")
    md.append("Where the time goes (median ms per RPC). The runtime runs inside RunPodSandbox (a new shim, "
              "then the pause container's `create` and `start`, next to the network namespace and CNI) and "
              "StartContainer (the container's `create` and `start` through the pod's shim); CreateContainer "
              "is containerd's own bookkeeping (no runtime call); the teardown holds the runtime's `kill` "
              "and `delete` calls from the shims. The rest is containerd, its Go shim and CNI, the same "
              "for every handler:")
    md.append("")
    md.append("| handler | " + " | ".join(phases) + " |")
    md.append("|---|" + "---:|" * len(phases))
    for r in hs:
        md.append(f"| {r} | " + " | ".join(f"{pmed(r, [i]):.1f}" for i in range(len(phases))) + " |")
    md.append("")
    print()
    print(f"pod start (CRI): " + ", ".join(f"{r} {start[r]:.1f} ms (x{base} {start[r] / start[base]:.2f})" for r in hs))
# ------------------------------------------------------------------ checkpoint and restore
# A section of its own, between CK_BEGIN and CK_END, with its own date and machine (the case
# runs only where `criu check` passes, which may be a guest: hack/vmtest/bench-checkpoint.sh).
CK_BEGIN = "<!-- checkpoint: hack/bench.sh's checkpoint case"
CK_END = "<!-- /checkpoint -->"


def ck_block(text):
    lines = text.split("\n")
    i = next((n for n, line in enumerate(lines) if line.startswith(CK_BEGIN)), None)
    j = next((n for n, line in enumerate(lines) if line == CK_END), None)
    if i is None or j is None or j < i:
        return None, lines
    return (i, j), lines


def criu_elapsed(path):
    """Seconds CRIU's log spans, its first timestamp to its last: "(SS.UUUUUU) ..." lines."""
    ts = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"\((\d+)\.(\d{6})\)", line)
                if m:
                    ts.append(int(m.group(1)) + int(m.group(2)) / 1e6)
    except OSError:
        return None
    return ts[-1] - ts[0] if ts else None


def ckpt_section():
    steps = [("checkpoint", 0, "dump.log", "`checkpoint --image-path DIR` of the running container"),
             ("restore", 1, "restore.log", "`restore -d --bundle B --image-path DIR` of that image")]
    rts = sorted(ck, key=rkey)
    base = "runc" if "runc" in ck else rts[0]
    # wall[step][r], criu[step][r], share[step][r]: lists over the cycles that have both
    wall, crius, share = {}, {}, {}
    for step, k, log, _ in steps:
        for r in rts:
            for i, t in sorted(ck[r].items()):
                wall.setdefault(step, {}).setdefault(r, []).append(t[k])
                c = criu_elapsed(os.path.join(rd, "criu", f"{r}-{i}-{log}"))
                if c is not None:
                    crius.setdefault(step, {}).setdefault(r, []).append(c)
                    share.setdefault(step, {}).setdefault(r, []).append(t[k] - c)
    n = min(len(v) for v in ck.values())
    out = [CK_BEGIN + ", with its own date and machine: a run of it alone replaces this section, "
           "a full run that skips it keeps it -->",
           "## Checkpoint and restore",
           "",
           "Written by `hack/bench.sh`" + (f" (CASES={meta['cases']})" if meta.get("cases") else "")
           + f" on {meta.get('date', '?')}"
           + (f", in {meta['where']}" if meta.get("where") else "") + ".",
           "",
           f"- machine: {meta.get('machine', '?')}",
           f"- CRIU {meta.get('criu', '?')}; {meta.get('ckpt_settings', '')}"]
    for r in rts:
        extra = f" ({meta['tong']})" if r == "tong" and meta.get("tong") else ""
        out.append(f"- {r}: {meta.get(f'version {r}', '?')}{extra}")
    for r, why in ck_na:
        out.append(f"- **{r}: n/a**: {why}")
    out.append("")
    out.append(f"A cycle: a detached busybox container (`sh -c` looping on `sleep 1`, stdio pipes; started "
               f"untimed), then its `checkpoint` and the `restore` of that image, each timed on its own "
               f"(hyperfine `-N`, `--prepare` untimed), then `delete -f`; {n} cycles per runtime, the runtimes "
               f"taking turns. Median, min and max of the command's wall time; `x {base}` is the median over "
               f"{base}'s median (below 1.00 is faster than {base}).")
    out.append("")
    out.append(f"| step | runtime | median | min | max | x {base} |")
    out.append("|---|---|---:|---:|---:|---:|")
    for step, _k, _log, label in steps:
        bm = statistics.median(wall[step][base])
        for j, r in enumerate(rts):
            med, lo, hi = stats(wall[step][r])
            b = "**" if r == "tong" else ""
            out.append(f"| {label if j == 0 else ''} | {b}{r}{b} | {b}{fmt_t(med)}{b} | {fmt_t(lo)} | "
                       f"{fmt_t(hi)} | {b}{ratio(med, bm)}{b} |")
    for r, why in ck_na:
        out.append(f"| | {r} | n/a | | | |")
    out.append("")
    cs = statistics.median(criu_start) if criu_start else None
    out.append("Where the time goes (medians over the cycles). CRIU's own time is what its log of the request "
               "spans, first line to last (`dump.log`, `restore.log` in the image directory, log level 4, as "
               "runc and tong both ask for); the runtime's share is the rest of the command's wall time, the "
               "median of each cycle's difference. The runtime's answers to CRIU's notifications during the "
               "request (network lock, namespaces, post-restore) fall within CRIU's time. Each share holds two "
               "starts of CRIU's executable: tong and runc both start a `criu swrk` to ask CRIU's version, then "
               "one for the request, whose log begins once it has started"
               + (f"; starting it (`criu --version`, {len(criu_start)} runs, two per cycle) takes "
                  f"{fmt_t(min(criu_start))} at the least here, {fmt_t(cs)} at the median (a busy host shows in "
                  "this as in the shares). The rest is the runtime's own work: its start, the container's "
                  "state, cgroups, `descriptors.json`, the conversation with CRIU" if cs else "") + ".")
    out.append("")
    out.append(f"| step | runtime | wall | CRIU's own | the runtime's share | share of wall | share x {base} |")
    out.append("|---|---|---:|---:|---:|---:|---:|")
    for step, _k, _log, _label in steps:
        bs = statistics.median(share[step][base]) if base in share.get(step, {}) else None
        for j, r in enumerate(rts):
            if r not in share.get(step, {}):
                continue
            w = statistics.median(wall[step][r])
            c = statistics.median(crius[step][r])
            sh = statistics.median(share[step][r])
            b = "**" if r == "tong" else ""
            out.append(f"| {step if j == 0 else ''} | {b}{r}{b} | {fmt_t(w)} | {fmt_t(c)} | {b}{fmt_t(sh)}{b} | "
                       f"{b}{100 * sh / w:.0f}%{b} | {ratio(sh, bs) if bs and bs > 0 else '–'} |")
    out.append("")
    if "tong" in share.get("checkpoint", {}) and "tong" in share.get("restore", {}):
        t = {st: (statistics.median(share[st]["tong"]), statistics.median(wall[st]["tong"])) for st in ("checkpoint", "restore")}
        line = ("Expectation (from the checkpoint issue): mostly CRIU's own cost, tong's share small. In this run "
                f"tong's share is {fmt_t(t['checkpoint'][0])} of its checkpoint "
                f"({100 * t['checkpoint'][0] / t['checkpoint'][1]:.0f}%) and {fmt_t(t['restore'][0])} of its "
                f"restore ({100 * t['restore'][0] / t['restore'][1]:.0f}%)")
        if base != "tong" and base in share.get("checkpoint", {}) and base in share.get("restore", {}):
            rb = {st: (statistics.median(share[st][base]), statistics.median(wall[st][base])) for st in ("checkpoint", "restore")}
            line += (f"; {base}'s, {fmt_t(rb['checkpoint'][0])} ({100 * rb['checkpoint'][0] / rb['checkpoint'][1]:.0f}%) "
                     f"and {fmt_t(rb['restore'][0])} ({100 * rb['restore'][0] / rb['restore'][1]:.0f}%)")
        out.append(line + ".")
        out.append("")
    if base != "tong" and all(r in crius.get(st, {}) for st in ("checkpoint", "restore") for r in ("tong", base)):
        q = {st: statistics.median(crius[st]["tong"]) / statistics.median(crius[st][base]) for st in ("checkpoint", "restore")}
        out.append(f"CRIU's own time is nearly the same work for both runtimes (the same CRIU, container and "
                   f"options); here it came out at {q['checkpoint']:.2f} of {base}'s for tong's checkpoints and "
                   f"{q['restore']:.2f} for its restores. That is the spread between runs on this machine, and it "
                   f"is in the wall-time ratios above too: the runtime's share is what tells the runtimes apart.")
        out.append("")
    out.append(CK_END)
    # stdout
    print()
    print(f"{'checkpoint':<14} {'runtime':<7} {'median':>10} {'CRIU':>10} {'share':>10} {'x ' + base:>7}  runs")
    for step, _k, _log, _label in steps:
        bm = statistics.median(wall[step][base])
        for r in rts:
            med = statistics.median(wall[step][r])
            c = statistics.median(crius[step][r]) if r in crius.get(step, {}) else None
            sh = statistics.median(share[step][r]) if r in share.get(step, {}) else None
            print(f"{step:<14} {r:<7} {fmt_t(med):>10} {fmt_t(c) if c is not None else '?':>10} "
                  f"{fmt_t(sh) if sh is not None else '?':>10} {ratio(med, bm):>7}  {len(wall[step][r])}")
    for r, why in ck_na:
        print(f"checkpoint     {r:<7} n/a: {why}")
    return out


ck_lines = ckpt_section() if ck else None
if ck_lines is None:
    # No checkpoint figures in this run: keep the section MD already has (from an earlier run).
    try:
        (i, j), old = ck_block(open(md_path).read())
        ck_lines = old[i:j + 1]
        md = [line + ("; the checkpoint section below is from an earlier run" if line.startswith("- **skipped checkpoint**") else "")
              for line in md]
    except (OSError, TypeError):
        pass
if ck_lines:
    md.extend(ck_lines)
    md.append("")
if ck_lines and splice_path and ck:
    span, lines = ck_block(open(splice_path).read())
    if span:
        lines[span[0]:span[1] + 1] = ck_lines
    else:
        at = next((n for n, line in enumerate(lines) if line.startswith("How each case is measured")), len(lines))
        lines[at:at] = ck_lines + [""]
    with open(splice_path, "w") as f:
        f.write("\n".join(lines))
    print(f"\ncheckpoint section written into {splice_path}")
md.append("How each case is measured (see the header of `hack/bench.sh`): hyperfine `-N` runs the runtime "
          "directly; `create` + `start` + `delete` times each command on its own (hyperfine `--prepare`, "
          "untimed, brings the container to the state the command needs) and adds run i of the three; "
          "the throughput case is two `sh` loops of `run`. Each runtime has its own copy of the busybox "
          "bundle and its own `--root`; config: `tong spec` with memory and pids limits, absolute "
          "`linux.cgroupsPath`.")
md.append("")
with open(md_path, "w") as f:
    f.write("\n".join(md))

# ------------------------------------------------------------------ SVG
panels = []
for case, label in CASES:
    if case not in times:
        continue
    if case == "throughput" and tp_n:
        label = f"{tp_n} {label}"
    data = [(r, *stats(times[case][r])) for r in sorted(times[case], key=rkey)]
    unit = 1.0 if case == "throughput" else 1e3
    panels.append((label.replace("`", ""), "s" if case == "throughput" else "ms", [(r, m * unit, lo * unit, hi * unit) for r, m, lo, hi in data], "crun"))
if rss:
    panels.append(("peak RSS of run", "MiB", [(r, *(v / 1024 for v in stats(rss[r]))) for r in runtimes if r in rss], "crun"))
if sizes:
    panels.append(("executable size", "MiB", [(r, sizes[r][0] / 2**20, None, None) for r in runtimes if r in sizes], "crun"))

COLS, PW, ROW, HEAD, LABEL_W = 2, 470, 22, 30, 52
heights = [HEAD + ROW * len(p[2]) + 14 for p in panels]
rows_h = [max(heights[i:i + COLS]) for i in range(0, len(panels), COLS)]
title_h = 46
W = COLS * PW + 20
H = title_h + sum(rows_h) + 24
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
       'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="#fff"/>',
       f'<text x="10" y="20" font-size="15" font-weight="bold">tong, crun, runc, youki: median (bar) and min–max (line); '
       'ratio to crun in brackets</text>',
       f'<text x="10" y="38" fill="#555">{html.escape(meta.get("date", ""))} · {html.escape(meta.get("machine", ""))}</text>']
y0 = title_h
for i, (title, unit, data, base) in enumerate(panels):
    col, row = i % COLS, i // COLS
    x = 10 + col * PW
    y = y0 + sum(rows_h[:row])
    out.append(f'<text x="{x}" y="{y + 18}" font-weight="bold">{html.escape(title)} ({unit})</text>')
    base_v = next((m for r, m, _, _ in data if r == base), None)
    # Whiskers end at 1.4 x the median (a tick marks a longer one), the bars and the
    # whiskers take at most 70% of the width, the labels the rest.
    ends = [min(hi, 1.4 * m) if hi is not None else m for _, m, _, hi in data]
    top = max(ends) / 0.70 or 1
    bar_w = PW - LABEL_W - 20
    for j, (r, m, lo, hi) in enumerate(data):
        yy = y + HEAD + j * ROW
        w = bar_w * m / top
        end = x + LABEL_W + w
        out.append(f'<text x="{x}" y="{yy + 13}">{r}</text>')
        out.append(f'<rect x="{x + LABEL_W}" y="{yy + 2}" width="{w:.1f}" height="{ROW - 6}" fill="{COLORS.get(r, "#495057")}"/>')
        if lo is not None:
            x1 = x + LABEL_W + bar_w * lo / top
            x2 = x + LABEL_W + bar_w * min(hi, 1.4 * m) / top
            ym = yy + ROW / 2 - 1
            out.append(f'<line x1="{x1:.1f}" y1="{ym}" x2="{x2:.1f}" y2="{ym}" stroke="#212529" stroke-width="1.2"/>')
            if hi > 1.4 * m:
                out.append(f'<path d="M{x2:.1f},{ym - 4} l4,4 l-4,4" fill="none" stroke="#212529" stroke-width="1.2"/>')
                x2 += 4
            end = max(end, x2)
        txt = f"{m:.3g}" if m < 1000 else f"{m:.0f}"
        if base_v and r != base:
            txt += f" ({m / base_v:.2f}x)"
        out.append(f'<text x="{end + 4:.1f}" y="{yy + ROW - 6}" fill="#212529">{html.escape(txt)}</text>')
out.append("</svg>")
with open(svg_path, "w") as f:
    f.write("\n".join(out) + "\n")
