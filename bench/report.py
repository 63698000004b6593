#!/usr/bin/env python3
"""bench/report.py: turn a benchmark run into figures.

    bench/report.py OUT_DIR

Reads OUT_DIR/raw.jsonl (one line per measurement, written by bench/run.sh)
and writes:
  OUT_DIR/results.jsonl  the measurement lines, then one line per figure
                         ("kind": "summary"): medians, ratios, targets
  OUT_DIR/table.txt      the same figures as a table for people
  OUT_DIR/*.png          plots, when gnuplot is installed

A ratio is volmig's figure over the baseline's (higher is better for
throughput and IOPS), taken between the medians of runs that alternated.
A smoke run records its figures but judges none: "met" is null.
Standard library only.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

MIB = 1 << 20
TIB = 1 << 40


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{nd}f}"


def page_reporting(env):
    now, was = str(env.get("page_reporting_order", "none")), str(env.get("page_reporting_order_was", ""))
    if now == "none":
        return "not in this kernel"
    state = "off" if now.isdigit() and int(now) > 10 else "on"
    if was and was != now:
        return f"{state} for the run (page_reporting_order {now}; {was} before and after)"
    return f"{state} (page_reporting_order {now})"


def met_str(m):
    return "-" if m is None else ("yes" if m else "NO")


class Table:
    """A titled block of aligned columns."""

    def __init__(self, title, header, note=None):
        self.title, self.header, self.rows, self.note = title, header, [], note

    def add(self, *cells):
        self.rows.append([str(c) for c in cells])

    def render(self):
        w = [max(len(r[i]) for r in [self.header] + self.rows) for i in range(len(self.header))]
        out = [self.title, "-" * len(self.title)]
        line = lambda r: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))
        out.append(line(self.header))
        out += [line(r) for r in self.rows]
        if self.note:
            out += ["  " + n for n in self.note.split("\n")]
        return "\n".join(out) + "\n"


def main(out):
    raw = [json.loads(l) for l in open(os.path.join(out, "raw.jsonl")) if l.strip()]
    env = next((r for r in raw if r["bench"] == "env"), {})
    smoke = env.get("mode") == "smoke"
    judge = not smoke
    summaries, tables = [], []

    def summary(**kw):
        kw = dict(bench=kw.pop("bench"), kind="summary", mode=env.get("mode"), **kw)
        summaries.append(kw)
        return kw

    def runs(bench, **match):
        return [r for r in raw if r["bench"] == bench and r.get("kind", "run") == "run"
                and all(r.get(k) == v for k, v in match.items())]

    # ---- copy ----
    copy = runs("copy")
    if copy:
        t = Table("1. Copy throughput (median of alternated runs, cold cache, durable at the end)",
                  ["case", "tool", "runs", "median s", "min-max s", "MiB/s", "ratio", "target", "met"],
                  "ratio = baseline time / volmig time (volmig's speed relative to the baseline);\n"
                  "volmig's time includes setup; qemu-img's includes a trailing fdatasync (sync -d).\n"
                  "sparse: MiB/s of data; the rest of the file is holes.\n"
                  "tiny: a 1 MiB copy, each tool's fixed cost (volmig: setup, state store, control\n"
                  "block, last checkpoint); for information, no target.")
        for case in ["dense-buffered", "dense-direct", "sparse", "tiny"]:
            by_tool = defaultdict(list)
            for r in copy:
                if r["case"] == case:
                    by_tool[r["tool"]].append(r)
            if "volmig" not in by_tool:
                continue
            vm = median([r["seconds"] for r in by_tool["volmig"]])
            nbytes = by_tool["volmig"][0].get("data_bytes", by_tool["volmig"][0]["bytes"])
            checks = sorted({r["check"] for rs in by_tool.values() for r in rs} - {"skipped", "ok"})
            nd = 3 if case == "tiny" else 2
            rng = lambda rs: f"{min(r['seconds'] for r in rs):.{nd}f}-{max(r['seconds'] for r in rs):.{nd}f}"
            t.add(case, "volmig", len(by_tool["volmig"]), fmt(vm, nd), rng(by_tool["volmig"]),
                  fmt(nbytes / MIB / vm, 0), "", "", "")
            for tool, target in [("dd", 0.95), ("qemu-img", 1.0)]:
                if tool not in by_tool:
                    continue
                if case == "tiny":
                    target = None  # the fixed cost, for information
                bm = median([r["seconds"] for r in by_tool[tool]])
                ratio = bm / vm
                met = ratio >= target if judge and target is not None else None
                summary(bench="copy", case=case, tool="volmig", baseline=tool,
                        volmig_median_s=round(vm, 4), baseline_median_s=round(bm, 4),
                        volmig_mib_s=round(nbytes / MIB / vm, 1), baseline_mib_s=round(nbytes / MIB / bm, 1),
                        ratio=round(ratio, 3), target=target, met=met, runs=len(by_tool[tool]),
                        checks_failed=checks)
                t.add(case, tool, len(by_tool[tool]), fmt(bm, nd), rng(by_tool[tool]), fmt(nbytes / MIB / bm, 0), fmt(ratio, 3),
                      f">= {target:.2f}" if target is not None else "-", met_str(met))
            if checks:
                t.add(case, "CHECK", "", "", "", "", "", "", ",".join(checks))
        tables.append(t)

    th = runs("threads")
    if th:
        t = Table("1b. volmig sync --threads (dense, buffered; default 4)", ["threads", "runs", "median s", "min-max s", "MiB/s"])
        for k in sorted({r["threads"] for r in th}):
            rs = [r for r in th if r["threads"] == k]
            m = median([r["seconds"] for r in rs])
            summary(bench="threads", threads=k, median_s=round(m, 4), mib_s=round(rs[0]["bytes"] / MIB / m, 1))
            t.add(k, len(rs), fmt(m, 2), f"{min(r['seconds'] for r in rs):.2f}-{max(r['seconds'] for r in rs):.2f}",
                  fmt(rs[0]["bytes"] / MIB / m, 0))
        tables.append(t)

    # ---- shim ----
    shim = runs("shim")
    if shim:
        warm = {r["state"]: r for r in raw if r["bench"] == "shim" and r.get("kind") == "warmup"}
        note = ["IOPS with fio, 4 KiB random; base = the same fio without the shim, alternated.",
                "overhead = 1 - shim/base; target: writes <= 3 %, reads <= 1 % (judged in the",
                "copying and synced states with no copier running; the copier-* rows are for information).",
                "log recs = dirty-log records the measured shim runs appended (0: the regions were dirty).",
                "CPU us/IO = fio's user+system CPU time per I/O (base/shim), a figure less disturbed by",
                "other load on the machine than IOPS; CPU % = the shim's extra CPU time per I/O.",
                "noop % = the same overhead for fio under a preload that only passes the calls on",
                "(bench/noop.c, copying state): the floor any LD_PRELOAD shim costs."]
        for s, w in warm.items():
            note.append(f"{s}: {w.get('note', '')}; warm-up pass logged {w['log_records']} records "
                        f"({w['regions']} regions)")
        t = Table("2. Shim overhead (volmig exec, regions already dirty)",
                  ["state", "case", "runs", "base IOPS", "shim IOPS", "ratio", "overhead %", "target", "met",
                   "noop %", "CPU us/IO", "CPU %", "log recs"], "\n".join(note))
        states = []
        for r in shim:
            if r["state"] not in states:
                states.append(r["state"])
        for st in states:
            cases = []
            for r in shim:
                if r["state"] == st and r["case"] not in cases:
                    cases.append(r["case"])
            for c in cases:
                b = [r["iops"] for r in shim if r["state"] == st and r["case"] == c and r["side"] == "base"]
                s = [r["iops"] for r in shim if r["state"] == st and r["case"] == c and r["side"] == "shim"]
                recs = sum(r["log_records"] for r in shim if r["state"] == st and r["case"] == c and r["side"] == "shim")
                cb = median([r.get("cpu_us_per_io") for r in shim if r["state"] == st and r["case"] == c and r["side"] == "base"])
                cs = median([r.get("cpu_us_per_io") for r in shim if r["state"] == st and r["case"] == c and r["side"] == "shim"])
                cpu_over = (cs / cb - 1) * 100 if cb and cs else None
                n = [r["iops"] for r in shim if r["state"] == st and r["case"] == c and r["side"] == "noop"]
                mb, ms, mn = median(b), median(s), median(n)
                ratio = ms / mb if mb else None
                noop_over = (1 - mn / mb) * 100 if mb and mn else None
                over = (1 - ratio) * 100 if ratio is not None else None
                target = 1.0 if c.startswith("randread") else 3.0
                judged = judge and st in ("copying", "synced")
                met = (over <= target) if judged and over is not None else None
                summary(bench="shim", state=st, case=c, base_iops=mb, shim_iops=ms,
                        ratio=round(ratio, 4) if ratio else None, overhead_pct=round(over, 2) if over is not None else None,
                        target_pct=target if st in ("copying", "synced") else None, met=met, runs=len(s),
                        base_cpu_us_per_io=cb, shim_cpu_us_per_io=cs,
                        cpu_overhead_pct=round(cpu_over, 2) if cpu_over is not None else None,
                        noop_iops=mn, noop_overhead_pct=round(noop_over, 2) if noop_over is not None else None,
                        shim_log_records=recs if st in ("setup", "copying", "synced") else None)
                t.add(st, c, len(s), fmt(mb, 0), fmt(ms, 0), fmt(ratio, 3), fmt(over, 1),
                      f"<= {target:.0f} %" if st in ("copying", "synced") else "-", met_str(met),
                      fmt(noop_over, 1), f"{fmt(cb, 2)}/{fmt(cs, 2)}", fmt(cpu_over, 1),
                      recs if st in ("setup", "copying", "synced") else "-")
        tables.append(t)

    # ---- shim instructions per I/O (callgrind) ----
    insn = runs("shim-insn")
    if insn:
        t = Table("2b. Shim cost in instructions per I/O (callgrind, copying state, regions dirty)",
                  ["case", "base insn/IO", "shim insn/IO", "shim's own", "of base %"],
                  "fio (--thread) under callgrind at two I/O counts, without and with the shim; per I/O is\n"
                  "the difference of the instruction counts over the difference of the I/Os (start-up\n"
                  "cancels). User-space instructions only: the kernel's work, most of a write's cost, is\n"
                  "not counted. shim's own = shim - base; of base = what it adds to fio's user-space\n"
                  "instructions per I/O. fio's own work varies with I/O timing, so the figure moves by up\n"
                  "to about 10 % between runs (IOPS: by ten or more, either way).")
        cases = []
        for r in insn:
            if r["case"] not in cases:
                cases.append(r["case"])
        for c in cases:
            per = {}
            for side in ["base", "shim"]:
                rs = sorted((r for r in insn if r["case"] == c and r["side"] == side), key=lambda r: r["ios"])
                if len(rs) >= 2 and rs[-1]["ios"] > rs[0]["ios"]:
                    per[side] = (rs[-1]["instructions"] - rs[0]["instructions"]) / (rs[-1]["ios"] - rs[0]["ios"])
            if len(per) < 2:
                continue
            own = per["shim"] - per["base"]
            summary(bench="shim-insn", case=c, base_insn_per_io=round(per["base"], 1),
                    shim_insn_per_io=round(per["shim"], 1), shim_own_insn_per_io=round(own, 1),
                    shim_own_pct=round(own / per["base"] * 100, 1))
            t.add(c, fmt(per["base"], 0), fmt(per["shim"], 0), fmt(own, 0), fmt(own / per["base"] * 100, 1))
        tables.append(t)

    # ---- first write ----
    fw = runs("firstwrite")
    if fw:
        t = Table("3. First-write latency (4 KiB pwrite, each to a clean region of a synced session)",
                  ["durability", "threads", "side", "runs", "p50 us", "p99 us", "max us", "p99 ratio", "recs/write"],
                  "median over runs of each run's p50/p99; max over all runs. base = no shim.\n"
                  "recs/write = dirty-log records per write the shim runs appended (1.00: every write logged).")
        for dur in ["process", "sync"]:
            for k in [1, 16]:
                rows = {}
                for side in ["base", "shim"]:
                    rs = [r for r in fw if r["durability"] == dur and r["threads"] == k and r["side"] == side]
                    if not rs:
                        continue
                    rows[side] = dict(runs=len(rs), p50=median([r["result"]["p50_us"] for r in rs]),
                                      p99=median([r["result"]["p99_us"] for r in rs]),
                                      max=max(r["result"]["max_us"] for r in rs),
                                      rec=sum(r["log_records"] for r in rs) / sum(r["result"]["writes"] for r in rs))
                if "shim" not in rows:
                    continue
                s, b = rows["shim"], rows.get("base")
                summary(bench="firstwrite", durability=dur, threads=k, shim_p50_us=s["p50"], shim_p99_us=s["p99"],
                        shim_max_us=s["max"], base_p50_us=b and b["p50"], base_p99_us=b and b["p99"],
                        records_per_write=round(s["rec"], 3), runs=s["runs"])
                if b:
                    t.add(dur, k, "base", b["runs"], fmt(b["p50"]), fmt(b["p99"]), fmt(b["max"]), "", "")
                t.add(dur, k, "shim", s["runs"], fmt(s["p50"]), fmt(s["p99"]), fmt(s["max"]),
                      fmt(s["p99"] / b["p99"], 0) + "x" if b else "-", fmt(s["rec"], 2))
        tables.append(t)

    # ---- resume ----
    rcase = [r for r in raw if r["bench"] == "resume" and r.get("kind") == "case"]
    if rcase:
        fresh = {r["volume"]: r for r in raw if r["bench"] == "resume" and r.get("kind") == "fresh"}
        t = Table("4. Crash-resume cost (SIGKILL of the copier at random moments, then restart)",
                  ["volume", "interval s", "kills", "recopied MiB/kill", "bound MiB (own / mean rate)",
                   "written-again MiB/kill",
                   "restart->1st write ms (median/max)", "4 KiB fdatasync ms (median/max)",
                   "beyond it ms (median/max)", "target", "met"],
                  "recopied = status bytes_recopied / kills; bound = one interval's copying + (threads+1) x run,\n"
                  "I6's bound: one interval of copying and the I/Os in flight.  own = with the bytes each killed\n"
                  "copier wrote in its busiest stretch of one interval (wchar sampled every 0.02 s; a copy runs at\n"
                  "page-cache speed until its flushes), averaged over the kills; mean = with the copy rate of an\n"
                  "unkilled run over the whole copy x interval.\n"
                  "written-again = bytes the copier processes wrote\n"
                  "(/proc/PID/io wchar) beyond the data, per kill.  restart->1st write = from the restarted\n"
                  "sync's start to its first change of the target (inotify), target <= 100 ms for every restart.\n"
                  "4 KiB fdatasync = dd writing 4 KiB with conv=fdatasync on the target's file system, started\n"
                  "with each restart: what any program waits for its first flush after the kill (the writes the\n"
                  "killed copier left in the disk's cache), the baseline of restart->1st write; beyond it =\n"
                  "restart->1st write minus that restart's 4 KiB fdatasync, the copier's own part.\n"
                  + "\n".join(f"fresh start ({v}): first write after {fmt(f['first_write_ms'])} ms, "
                              f"copy {fmt(f['seconds'], 2)} s" for v, f in fresh.items()))
        for r in rcase:
            rr0 = [x for x in raw if x["bench"] == "resume" and x.get("kind") == "run"
                   and x["volume"] == r["volume"] and x["interval"] == r["interval"]]
            rr = [x for x in rr0 if x["restart"]]
            firsts = [x["first_write_ms"] for x in rr if x["first_write_ms"] is not None]
            probes = [x["flush_probe_ms"] for x in rr if x.get("flush_probe_ms") is not None]
            f = fresh.get(r["volume"])
            rate = r["data_bytes"] / f["seconds"] if f else None
            inflight = (r["threads"] + 1) * r.get("run_size", r["region_size"])
            bound_mean = rate * r["interval"] + inflight if rate else None
            killed = [x for x in rr0 if x.get("killed") and x.get("interval_bytes") is not None]
            bound = (sum(x["interval_bytes"] + inflight for x in killed) / len(killed)
                     if killed else bound_mean)
            k = r["kills"]
            per = r["bytes_recopied"] / k if k else None
            again = (r["bytes_written"] - r["data_bytes"]) / k if k else None
            mmed, mmax = median(firsts), (max(firsts) if firsts else None)
            pmed, pmax = median(probes), (max(probes) if probes else None)
            own = [x["first_write_ms"] - x["flush_probe_ms"] for x in rr
                   if x["first_write_ms"] is not None and x.get("flush_probe_ms") is not None]
            omed, omax = median(own), (max(own) if own else None)
            met = (mmax <= 100) if judge and mmax is not None else None
            summary(bench="resume", volume=r["volume"], interval=r["interval"], kills=k,
                    bytes_recopied=r["bytes_recopied"], recopied_per_kill=per, bound_per_kill=bound,
                    bound_mean_rate_per_kill=bound_mean, within_bound=(per <= bound if per is not None
                                                                      and bound else None),
                    written_again_per_kill=again, restart_first_write_ms_median=mmed,
                    restart_first_write_ms_max=mmax, restarts_measured=len(firsts),
                    flush_probe_ms_median=pmed, flush_probe_ms_max=pmax,
                    beyond_flush_ms_median=omed, beyond_flush_ms_max=omax, target_ms=100, met=met)
            t.add(r["volume"], r["interval"], k, fmt(per and per / MIB),
                  f"{fmt(bound and bound / MIB)} / {fmt(bound_mean and bound_mean / MIB)}",
                  fmt(again and again / MIB), f"{fmt(mmed)} / {fmt(mmax)}", f"{fmt(pmed)} / {fmt(pmax)}",
                  f"{fmt(omed)} / {fmt(omax)}", "<= 100", met_str(met))
        tables.append(t)

    # ---- convergence ----
    conv = runs("converge")
    if conv:
        t = Table("5. Convergence: time to synced with a writer under the shim",
                  ["case", "writer IOPS (target/achieved)", "converged", "seconds", "dirty regions at end"],
                  "random: 4 KiB random writes over the whole volume; hotspot: within 8 regions (8 MiB);\n"
                  "the fraction is of the copy bandwidth measured without a writer (case none).\n"
                  "Not converged: the copier was stopped at the timeout (seconds = the timeout); dirty regions\n"
                  "are then the durable dirty set after that stop.")
        for r in conv:
            summary(bench="converge", case=r["case"], converged=r["converged"], seconds=r["seconds"],
                    write_iops=r["write_iops"], write_iops_target=r["write_iops_target"],
                    dirty_regions_at_end=r["dirty_regions_at_end"])
            t.add(r["case"], f"{r['write_iops_target']}/{fmt(r['write_iops'], 0)}", fmt(r["converged"]),
                  fmt(r["seconds"], 2), fmt(r["dirty_regions_at_end"]))
        tables.append(t)

    # ---- memory ----
    mem = sorted(runs("memory"), key=lambda r: r["size"])
    if mem:
        t = Table("6. Memory: copier peak RSS and control block size",
                  ["volume", "regions", "peak RSS MiB", "ctl MiB", "state dir MiB"])
        for r in mem:
            t.add(f"{r['size'] / TIB:.3g} TiB" if r["size"] >= TIB else f"{r['size'] / (1 << 30):.3g} GiB",
                  r["regions"], fmt(r["maxrss_kib"] / 1024), fmt(r["ctl_bytes"] / MIB, 2), fmt(r["state_dir_bytes"] / MIB))
        if len(mem) >= 2:
            lo, hi = mem[0], mem[-1]
            dt = (hi["size"] - lo["size"]) / TIB
            rss = (hi["maxrss_kib"] - lo["maxrss_kib"]) * 1024 / dt
            ctl = (hi["ctl_bytes"] - lo["ctl_bytes"]) / dt
            summary(bench="memory", rss_per_tib=round(rss), ctl_per_tib=round(ctl), region_size=MIB)
            t.note = f"per TiB of volume (1 MiB regions): peak RSS {rss / MIB:.1f} MiB, control block {ctl / MIB:.1f} MiB"
        tables.append(t)

    cut = [r for r in raw if r["bench"] == "cutover"]
    if cut and cut[0].get("measured") is False:
        summary(bench="cutover", measured=False, note=cut[0]["note"])
        tables.append(Table("7. Cutover stall", ["figure"], cut[0]["note"]))
    elif cut:
        t = Table("7. Cutover stall (fio 4 KiB random writes, 2000 IOPS, under the shim; sync --follow running)",
                  ["side", "runs", "switch s", "commit s", "worst write ms", "p99 write us", "end state"],
                  "cutover: volmig switch, then volmig commit, issued while the writer runs; base: neither.\n"
                  "worst write = the writer's longest write over the whole run (median over runs);\n"
                  "the stall is the difference between the two rows.")
        rows = {}
        for side in ["base", "cutover"]:
            rs = [r for r in cut if r["side"] == side]
            if not rs:
                continue
            rows[side] = dict(runs=len(rs), sw=median([r["switch_s"] for r in rs]), cm=median([r["commit_s"] for r in rs]),
                              mx=median([r["max_ms"] for r in rs]), p99=median([r["p99_us"] for r in rs]),
                              states=",".join(sorted({r["state"] for r in rs})))
            x = rows[side]
            t.add(side, x["runs"], fmt(x["sw"], 3), fmt(x["cm"], 3), fmt(x["mx"], 1), fmt(x["p99"], 0), x["states"])
        if "base" in rows and "cutover" in rows:
            stall = rows["cutover"]["mx"] - rows["base"]["mx"]
            summary(bench="cutover", measured=True, switch_s=rows["cutover"]["sw"], commit_s=rows["cutover"]["cm"],
                    worst_write_ms=rows["cutover"]["mx"], base_worst_write_ms=rows["base"]["mx"],
                    stall_ms=round(stall, 3), end_states=rows["cutover"]["states"])
        tables.append(t)

    done = next((r for r in raw if r["bench"] == "done"), {})
    if env.get("volmig_rev"):
        env["volmig_rev"] = f"{env['volmig_rev']}, volmig {env.get('volmig_sha256', '?')}"
    head = [f"volmig benchmarks ({env.get('mode', '?')} run, {env.get('volmig_rev', '?')}, "
            f"{done.get('seconds', 0) / 60:.1f} min)",
            f"machine: {env.get('cpus')} CPUs, {int(env.get('mem_kib', 0)) // 1024 // 1024} GiB RAM, "
            f"{env.get('fs')} at {os.path.dirname(env.get('data_dir', '')) or '?'}, kernel {env.get('kernel')}",
            f"readahead {env.get('readahead_kib', '?')} KiB; free page reporting (VM): "
            + page_reporting(env),
            f"baselines: {env.get('dd')}; {env.get('qemu_img')}; {env.get('fio')}",
            "page cache dropped before each copy: " + ("yes" if done.get("page_cache_dropped", True) else "NO")]
    if smoke:
        head.append("smoke run: small sizes, figures recorded but not judged against the targets")
    text = "\n".join(head) + "\n\n" + "\n".join(tb.render() for tb in tables)
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        for r in raw + summaries:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    sys.stdout.write(text)
    plots(out, raw, summaries)


# ---- plots ----------------------------------------------------------------------
def gnuplot(out, name, script):
    path = os.path.join(out, f"plot-{name}.gp")
    with open(path, "w") as f:
        f.write(f"set terminal pngcairo size 1000,{script[0]} font 'sans,10'\n")
        f.write(f"set output '{os.path.join(out, name + '.png')}'\n")
        f.write(script[1])
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"report: gnuplot {name}: {r.stderr}\n")


def plots(out, raw, summaries):
    if shutil.which("gnuplot") is None:
        sys.stderr.write("report: gnuplot not installed (apt-get install gnuplot-nox): no plots\n")
        return
    made = []
    # copy throughput
    copy = [s for s in summaries if s["bench"] == "copy"]
    if copy:
        rows = {}
        for s in copy:
            rows.setdefault(s["case"], {"volmig": s["volmig_mib_s"]})[s["baseline"]] = s["baseline_mib_s"]
        dat = os.path.join(out, "plot-copy.dat")
        with open(dat, "w") as f:
            f.write("case volmig dd qemu-img\n")
            for c, v in rows.items():
                f.write(f"{c} {v.get('volmig', '-')} {v.get('dd', '-')} {v.get('qemu-img', '-')}\n")
        gnuplot(out, "copy", (500, f"""
set title 'Copy throughput (median MiB/s; sparse: MiB/s of data)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set datafile missing '-'
set key top right
set ylabel 'MiB/s'
set yrange [0:*]
set grid ytics
plot '{dat}' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
"""))
        made.append("copy")
    # shim ratios
    shim = [s for s in summaries if s["bench"] == "shim" and s["ratio"] is not None]
    if shim:
        states = []
        for s in shim:
            if s["state"] not in states:
                states.append(s["state"])
        cases = []
        for s in shim:
            if s["case"] not in cases:
                cases.append(s["case"])
        dat = os.path.join(out, "plot-shim.dat")
        with open(dat, "w") as f:
            f.write("case " + " ".join(states) + "\n")
            for c in cases:
                vals = []
                for st in states:
                    m = [s["ratio"] for s in shim if s["state"] == st and s["case"] == c]
                    vals.append(str(m[0]) if m else "-")
                f.write(c + " " + " ".join(vals) + "\n")
        cols = ", ".join(f"'' using {i + 2} title columnheader({i + 2})" for i in range(1, len(states)))
        gnuplot(out, "shim", (500, f"""
set title 'IOPS under the shim / IOPS without (fio 4 KiB random)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set datafile missing '-'
set key outside right
set ylabel 'ratio'
set logscale y
set yrange [0.001:2]
set grid ytics
set xtics rotate by -20
set arrow from graph 0, first 0.97 to graph 1, first 0.97 nohead dt 2 lc rgb 'red'
plot '{dat}' using 2:xtic(1) title columnheader(2){', ' + cols if cols else ''}
"""))
        made.append("shim")
    # first-write latency CDF
    lats = sorted(f for f in os.listdir(out) if f.startswith("plot-lat-") and f.endswith(".dat"))
    if lats:
        parts = []
        for f in lats:
            n = sum(1 for _ in open(os.path.join(out, f)))
            label = f[len("plot-lat-"):-4].replace("-", " ")
            parts.append(f"'{os.path.join(out, f)}' using 1:($0/{max(n - 1, 1)}) with lines lw 2 title '{label}'")
        gnuplot(out, "firstwrite", (550, """
set title 'First write to a clean region: latency CDF (side durability threads)'
set logscale x
set xlabel 'latency (us)'
set ylabel 'fraction of writes'
set key bottom right
set grid
plot """ + ", ".join(parts) + "\n"))
        made.append("firstwrite")
    # resume timelines
    for vol in ["dense", "sparse"]:
        ivs = sorted({r["interval"] for r in raw if r["bench"] == "resume" and r.get("kind") == "case" and r["volume"] == vol})
        if not ivs:
            continue
        script = f"set multiplot layout {len(ivs)},1 title 'Copy rate over time, {vol} volume: SIGKILL (red) and restart (green)'\n"
        for iv in ivs:
            base = os.path.join(out, f"plot-resume-{vol}-{iv}")
            if not os.path.exists(base + ".samples"):
                continue
            events = sorted((l.split() for l in open(base + ".events") if l.strip()), key=lambda e: float(e[0]))
            t0 = float(events[0][0]) if events else 0.0
            prev, rows = {}, []
            for l in open(base + ".samples"):
                run, t, _r, w = l.split()
                t, w = float(t), int(w)
                if run not in prev:
                    if prev:  # the previous run ended at its last sample
                        rows.append((max(p[0] for p in prev.values()) - t0, 0.0))
                    rows.append((t - t0, 0.0))
                elif t >= prev[run][0] + 0.095:
                    # the rate over the 0.1 s (samples are 0.02 s apart) ending at t,
                    # drawn from its start
                    rows.append((prev[run][0] - t0, (w - prev[run][1]) / MIB / (t - prev[run][0])))
                else:
                    continue
                prev[run] = (t, w)
            if prev:
                rows.append((max(p[0] for p in prev.values()) - t0, 0.0))
            with open(base + ".dat", "w") as f:
                for t, v in rows:
                    f.write(f"{t:.3f} {v:.1f}\n")
            arrows = "".join(
                f"set arrow from {float(e[0]) - t0:.3f}, graph 0 to {float(e[0]) - t0:.3f}, graph 1 nohead "
                f"lc rgb '{'red' if e[1] == 'kill' else 'dark-green'}' lw 1.5\n" for e in events)
            script += (f"unset arrow\n{arrows}set title 'checkpoint interval {iv} s' offset 0,-0.8\n"
                       "set ylabel 'MiB/s written'\nset xlabel 'seconds since the first start'\n"
                       "set yrange [0:*]\nset grid\nunset key\n"
                       f"plot '{base}.dat' using 1:2 with steps lw 1.5 lc rgb 'blue'\n")
        script += "unset multiplot\n"
        gnuplot(out, f"resume-{vol}", (260 * len(ivs) + 60, script))
        made.append(f"resume-{vol}")
    # convergence
    convs = [r for r in raw if r["bench"] == "converge" and r["writer"] != "none"]
    parts = []
    for r in convs:
        dat = os.path.join(out, f"plot-conv-{r['case']}.dat")
        if os.path.exists(dat) and os.path.getsize(dat) > 0:
            parts.append(f"'{dat}' using 1:2 with lines lw 2 title '{r['case']} ({fmt(r['write_iops'], 0)} IOPS)'")
    if parts:
        gnuplot(out, "converge", (500, """
set title 'Dirty regions (durable) while copying under a writer'
set xlabel 'seconds since sync started'
set ylabel 'dirty regions'
set key outside right
set grid
plot """ + ", ".join(parts) + "\n"))
        made.append("converge")
    sys.stderr.write("report: plots: " + ", ".join(f"{m}.png" for m in made) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: report.py OUT_DIR\n")
        sys.exit(2)
    main(sys.argv[1])
