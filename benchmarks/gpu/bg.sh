# Long GPU jobs that outlast one device call (10 min): start them detached (setsid: they run on until the machine
# goes back), then watch them from the following calls, which must come within the machine's idle limit.
#   bash benchmarks/gpu/bg.sh start NAME CMD...   # CMD runs under env.sh, output in /tmp/bg/NAME.log
#   bash benchmarks/gpu/bg.sh watch SECONDS NAME... # progress every 60 s until all NAMEs end or SECONDS pass
#     (WATCH_LOGS='a glob' adds the last line of each matching log, e.g. every run's train.log)
# A job's exit status lands in /tmp/bg/NAME.rc.  Used for the Metis from-scratch runs (docs/benchmarks.md).
set -euo pipefail
mkdir -p /tmp/bg
case "${1:-}" in
  start)
    name=$2; shift 2
    setsid nohup bash -c 'source benchmarks/gpu/env.sh || true; set +e; "$@"; echo $? > /tmp/bg/'"$name"'.rc' bash "$@" \
      > "/tmp/bg/$name.log" 2>&1 < /dev/null &
    echo "started $name (pid $!)";;
  watch)
    limit=$2; shift 2; start=$(date +%s)
    for n in "$@"; do  # a fresh machine (the one that ran NAME went back when idle): say so, do not wait out SECONDS
      if [ ! -f "/tmp/bg/$n.log" ]; then
        echo "bg.sh: $n was never started on this machine (a fresh one: the machine that ran it was handed back" \
          "after its idle limit, and its results with it); nothing to watch" >&2
        exit 3
      fi
    done
    while :; do
      done_all=1
      for n in "$@"; do
        if [ -f "/tmp/bg/$n.rc" ]; then echo "$n: ended, rc $(cat "/tmp/bg/$n.rc")"; else done_all=0
          echo "$n: $(grep -v '^\s*$' "/tmp/bg/$n.log" | tail -1 | cut -c1-200)"; fi
      done
      for f in ${WATCH_LOGS:-}; do [ -f "$f" ] && echo "  $f: $(tail -1 "$f" | cut -c1-160)"; done
      elapsed=$(( $(date +%s) - start ))
      if [ "$done_all" = 1 ] || [ "$elapsed" -ge "$limit" ]; then break; fi
      sleep $(( limit - elapsed < 60 ? limit - elapsed : 60 ))
    done;;
  *) echo "usage: bg.sh start NAME CMD... | bg.sh watch SECONDS NAME..." >&2; exit 2;;
esac
