"""Renders the route table benchmark JSON as a Markdown table, with ratios against the baselines
measured in the same run and the targets of the route table issue."""
import json
import sys


def medians(path):
    data = json.load(open(path))
    out = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
        # CPU time of the benchmark thread: what a lookup or a build costs, without the time the thread
        # spent preempted on a shared machine (wall time is also in the JSON).
        out[name] = dict(b, ns=b["cpu_time"] * unit)
    return data["context"], out


def syscalls(strace_file):
    """Total calls from `strace -c` output (the 'total' line)."""
    for line in open(strace_file):
        fields = line.split()
        if fields and fields[-1] == "total":
            return int(fields[3])  # % time, seconds, usecs/call, calls, [errors,] total
    return 0


def main(path, poll_json=None, strace_file=None):
    context, m = medians(path)
    base = m["BM_Baseline_UnorderedMapFind"]["ns"]
    rows = []

    def lookup(name, label):
        if name not in m:  # a quick run (bench/run.sh --quick) measures fewer
            return None
        ns = m[name]["ns"]
        ok = "yes" if ns <= 200 else "NO"
        rows.append(f"| {label} | {ns:.0f} ns | {ns / base:.2f}x | <= 200 ns | {ok} |")
        return ns

    lookup("BM_Lookup_10kHosts_5Paths", "lookup, 10,000 hosts x 5 paths")
    lookup("BM_Lookup_1Host_10kPaths", "lookup, 1 host x 10,000 paths")
    lookup("BM_Lookup_2kWildcardHosts", "lookup, 2,000 wildcard hosts")
    small = lookup("BM_Lookup_Routes/100", "lookup, 100 routes")
    for n in (1000, 10000):
        lookup(f"BM_Lookup_Routes/{n}", f"lookup, {n:,} routes")
    large = lookup("BM_Lookup_Routes/100000", "lookup, 100,000 routes")
    if small and large:
        growth = large / small
        rows.append(f"| growth 100 -> 100,000 routes | {growth:.2f}x | | < 2x | {'yes' if growth < 2 else 'NO'} |")
    if "BM_BuildPublish_10kIngresses/iterations:10" in m:
        build_rows(m, rows)
    if "BM_ReaderPollUnchanged" in m:
        poll_rows(m, rows, poll_json, strace_file)

    reps = m["BM_Baseline_UnorderedMapFind"].get("repetitions", "the")
    print(f"Route table benchmarks: median of {reps} repetitions, CPU time per operation; {context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz, {context.get('date')}.")
    print(f"Baseline for lookups: one std::unordered_map<std::string,int>::find of the host, {base:.0f} ns, same run.")
    print()
    print("| measurement | result | vs baseline | target | met |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(r)


def build_rows(m, rows):
    build = m["BM_BuildPublish_10kIngresses/iterations:10"]
    kept = m["BM_BuildPublish_10kIngresses_HeapKept/iterations:10"]
    ms = build["ns"] / 1e6
    kept_ms = kept["ns"] / 1e6
    mb = build["snapshot_MB"]
    rows.append(f"| build + publish, 10,000 Ingresses x 5 paths, {build['endpoints']:.0f} endpoints (glibc defaults) | {ms:.1f} ms | | <= 50 ms | {'yes' if ms <= 50 else 'NO'} |")
    rows.append(f"| the same with the heap kept between builds (mallopt) | {kept_ms:.1f} ms | {kept_ms / ms:.2f}x of the above | <= 50 ms | {'yes' if kept_ms <= 50 else 'NO'} |")
    rows.append(f"| snapshot size for the above | {mb:.1f} MB | | <= 16 MB | {'yes' if mb <= 16 else 'NO'} |")


def poll_rows(m, rows, poll_json, strace_file):
    poll = m["BM_ReaderPollUnchanged"]["ns"]
    load = m["BM_Baseline_AtomicLoad"]["ns"]
    rows.append(f"| reader poll, generation unchanged | {poll:.2f} ns | {poll / load:.2f}x of a bare acquire load ({load:.2f} ns) | one load, a compare, no syscall | {'yes' if poll < 5 else 'NO'} |")
    if poll_json and strace_file:
        iterations = sum(b["iterations"] for b in json.load(open(poll_json))["benchmarks"])
        calls = syscalls(strace_file)
        rows.append(f"| syscalls while polling {iterations:,} times (strace -c, whole process) | {calls} | {calls / iterations:.1e} per poll | 0 per poll | {'yes' if calls * 1000 < iterations else 'NO'} |")


if __name__ == "__main__":
    main(sys.argv[1], *(a or None for a in sys.argv[2:4]))
