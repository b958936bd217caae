#!/usr/bin/env bash
# The README's first command, timed from a fresh clone in a fresh venv with nothing reused (no pip
# cache, no token cache, no ../shared beside the clone), as a new user on a CPU machine runs it.
# Writes benchmarks/results/quickstart_cpu/: timing.json (device, commit, command, seconds, the
# machine's load while it ran), report.md and the curves the command wrote, compare.log.
#   bash benchmarks/quickstart_cpu.sh [RESULTS_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
results=${1:-$repo/benchmarks/results/quickstart_cpu}
work=$(mktemp -d /tmp/averis-quickstart.XXXXXX)
git clone -q "$repo" "$work/averis"
cd "$work/averis"
export PIP_NO_CACHE_DIR=1 AVERIS_CACHE="$work/cache"
# were the cores idle? the machine's busy CPU time (/proc/stat) over the run minus this command's own
# (bash's `times`) is what other processes used meanwhile
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
stat0=$(head -1 /proc/stat)
t0=$(date +%s.%N)
# the README's command, cut in two only to time the install apart
python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && pip install -q -e .
t1=$(date +%s.%N)
averis compare --out runs/quickstart 2>&1 | tee "$work/compare.log"
t2=$(date +%s.%N)
stat2=$(head -1 /proc/stat)
times > "$work/times"  # not $(times): a command substitution's subshell has no children of its own
ours=$(tail -1 "$work/times")
mkdir -p "$results"
cp runs/quickstart/report.md runs/quickstart/*.png "$work/compare.log" \
   "$results/"
python - "$results/timing.json" "$t0" "$t1" "$t2" "$load_before" "$stat0" "$stat2" "$ours" <<'EOF'
import json, os, platform, re, subprocess, sys
import torch
path, t0, t1, t2, before, stat0, stat2, ours = sys.argv[1], *map(float, sys.argv[2:5]), *sys.argv[5:]


def busy(line):  # cpu user nice system idle iowait irq softirq steal ... in 1/100 s
    v = [int(x) for x in line.split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def seconds(text):  # bash `times`: "1m2.345s 0m0.678s" (children's user and system time)
    return sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", text))


wall, cores = t2 - t0, len(os.sched_getaffinity(0))
others = max(0.0, busy(stat2) - busy(stat0) - seconds(ours))
cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
json.dump({
    "command": "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e . "
               "&& averis compare --out runs/quickstart",
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "device": f"CPU: {cpu}, {cores} cores, no GPU",
    "python": platform.python_version(), "torch": torch.__version__,
    "wall_s": round(t2 - t0, 1), "install_s": round(t1 - t0, 1), "compare_s": round(t2 - t1, 1),
    "load_average_before_1_5_15min": before,
    "cpu_s_of_this_command": round(seconds(ours), 1),
    "cores_used_by_other_processes_meanwhile": round(others / wall, 2),
    "fresh": "fresh clone, fresh venv, PIP_NO_CACHE_DIR=1, empty AVERIS_CACHE, no ../shared",
}, open(path, "w"), indent=1)
print(open(path).read())
EOF
rm -rf "$work"
