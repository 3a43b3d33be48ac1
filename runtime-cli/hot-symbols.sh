#!/bin/sh
# Regenerates runtime-cli/hot-symbols.txt: the functions hull runs on its everyday path, which
# the linker lays out together (see build.rs for why). Run as root on a host that can run
# containers, with perf, python3, binutils and busybox-static installed:
#
#     sh runtime-cli/hot-symbols.sh            # 20 rounds of each command, about 6 minutes
#     HOT_ROUNDS=50 sh runtime-cli/hot-symbols.sh
#
# Each command of the everyday path runs HOT_ROUNDS times under `perf record`, sampling user
# time at the highest rate the kernel allows (100 kHz). The sampled addresses are mapped to the
# static binary's symbols here, not by perf: `create`, `run` and `exec` run from a sealed copy of
# the binary that no path names. Regenerate after a dependency or toolchain update (their
# symbols' hashes change; the benchmark prints how much of the list the binary still has).
set -eu
cd "$(dirname "$0")/.."
rounds=${HOT_ROUNDS:-20}
work=$(mktemp -d /tmp/hull-hot.XXXXXX)
# Every container of the run goes, also when a round fails midway (set -e).
cleanup() {
    for c in $(hull --root "$work/root" list -q 2>/dev/null); do
        hull --root "$work/root" delete -f "$c" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Without the current order, so that ties keep the compiler's layout.
HULL_NO_SYMBOL_ORDER=1 cargo rustc --quiet --release -p hull-cli --bin hull -- \
    -C target-feature=+crt-static -C relocation-model=static
mkdir -p "$work/bin" "$work/bundle/rootfs/bin" "$work/data"
# Named `hull` so that its samples (comm `hull`) are told from the container's.
cp target/release/hull "$work/bin/hull"
PATH="$work/bin:$PATH"
bb=$(command -v busybox)
cp "$bb" "$work/bundle/rootfs/bin/busybox"
for t in sh true sleep; do ln -s busybox "$work/bundle/rootfs/bin/$t"; done
hull spec --bundle "$work/bundle"
python3 - "$work/bundle" "$work/live" <<'EOF'
import json, os, sys
bundle, live = sys.argv[1:]
c = json.load(open(bundle + "/config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(bundle + "/config.json", "w"))
# The long-lived container for exec, kill, ps...: same root filesystem, by absolute path.
c["process"]["args"] = ["/bin/sleep", "1000"]
c["root"]["path"] = bundle + "/rootfs"
os.mkdir(live)
json.dump(c, open(live + "/config.json", "w"))
EOF

r="--root $work/root"
sample() { # class, then the command
    class=$1
    shift
    perf record -q -e cpu-clock:u -F 100000 -o "$work/data/$class.$i.perf" -- "$@" >/dev/null
}
hull $r run -d --bundle "$work/live" hot-live >/dev/null
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    sample run hull $r run --bundle "$work/bundle" "hot-run$i"
    sample create hull $r create --bundle "$work/bundle" "hot-c$i"
    sample state hull $r state "hot-c$i"
    sample start hull $r start "hot-c$i"
    sample delete hull $r delete "hot-c$i"
    sample exec hull $r exec hot-live /bin/true
    sample list hull $r list
    sample kill hull $r kill hot-live CONT
    sample ps hull $r ps hot-live
    sample events hull $r events --stats hot-live
    sample pause hull $r pause hot-live
    sample resume hull $r resume hot-live
    sample version hull --version
done
for f in "$work"/data/*.perf; do
    perf script -i "$f" -F comm,ip 2>/dev/null | awk '$1 == "hull" { print $2 }'
done > "$work/samples"
nm --defined-only -S target/release/hull > "$work/symbols"
objdump -d --no-show-raw-insn target/release/hull > "$work/code"
python3 - "$work/samples" "$work/symbols" "$work/code" > runtime-cli/hot-symbols.txt <<'EOF'
import bisect, re, sys
samples, symbols, code = sys.argv[1:]
syms = []
for line in open(symbols):
    p = line.split()
    if len(p) == 4 and p[2] in "tTwWiI":
        syms.append((int(p[0], 16), int(p[1], 16), p[3]))
syms.sort()
starts = [s[0] for s in syms]
size = {s[2]: s[1] for s in syms}
where = {s[2]: s[0] for s in syms}
hot = set()
for line in open(samples):
    a = int(line, 16)
    i = bisect.bisect_right(starts, a) - 1
    if i >= 0 and a < syms[i][0] + max(syms[i][1], 1):
        hot.add(syms[i][2])
# Static glibc runs every IFUNC resolver at start-up, too early and too briefly to be sampled.
hot |= {n for n in size if n.endswith("_ifunc")}
# Small functions that run for a few nanoseconds are missed by sampling but cost a whole 64 KiB
# window each: the small (512 bytes at most) callees of hot functions, two calls deep, go with
# them (about 100 KB more).
calls, fn = {}, None
for line in open(code):
    m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
    if m:
        fn = m.group(1)
        continue
    m = re.search(r"\s(?:call|jmp)\s+[0-9a-f]+ <([^>+]+)>", line)
    if m and fn is not None and m.group(1) != fn:
        calls.setdefault(fn, set()).add(m.group(1))
frontier = list(hot)
for _ in range(2):
    frontier = [c for f in frontier for c in calls.get(f, ()) if size.get(c, 1 << 20) <= 512]
    frontier = [c for c in set(frontier) if c not in hot]
    hot |= set(frontier)
# In the compiler's order, which keeps a caller near its callees.
print("\n".join(sorted(hot, key=lambda n: where[n])))
EOF
echo "$(wc -l < runtime-cli/hot-symbols.txt) symbols in runtime-cli/hot-symbols.txt" >&2
