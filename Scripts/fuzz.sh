#!/usr/bin/env bash
# libFuzzer over every decoder of outside bytes (the targets are Sources/KCFuzzTargets; the
# binary is Fuzz/, the target chosen by FUZZ_TARGET). Builds with -sanitize=fuzzer,address into
# .build-fuzz, seeds a working corpus from the committed one (Fuzz/Corpus/TARGET), runs, and
# prints executions and any crash. A crash input is kept in .build-fuzz/crashes/TARGET: fix
# the cause and commit the input to Fuzz/Regressions/TARGET/, which the test suite replays.
#   Scripts/fuzz.sh TARGET SECONDS     one target
#   Scripts/fuzz.sh all SECONDS        every target in turn (SECONDS each)
#   Scripts/fuzz.sh smoke              every target for 5 s (about a minute and a quarter)
#   Scripts/fuzz.sh seeds              rewrite the committed seed corpora
#   Scripts/fuzz.sh list               the targets
set -euo pipefail
cd "$(dirname "$0")/.."
targets="frames handshake wire-message transaction block vote proposal certificate evidence wal-record genesis config rpc-body amount"
what=${1:?usage: Scripts/fuzz.sh TARGET|all|seeds|list [SECONDS]}
if [ "$what" = list ]; then echo "$targets"; exit 0; fi
seconds=${2:-60}
if [ "$what" = smoke ]; then what=all; seconds=5; fi
Scripts/install-deps.sh
echo "building the fuzz harness (-sanitize=fuzzer,address)..."
# Linked with the toolchain's lld: gold fails on the sanitizer's objects (an internal error).
mkdir -p .build-fuzz
lld="$(dirname "$(readlink -f "$(command -v swiftc)")")/ld.lld"
printf '{"schemaVersion": "1.0", "linker": {"path": "%s"}}\n' "$lld" > .build-fuzz/toolset.json
# SwiftPM keeps the build plan of a path dependency and misses files added to it since:
# dropping the plan makes it list the sources again (the compiled objects are kept).
rm -f .build-fuzz/release.yaml .build-fuzz/*/release/description.json
swift build --package-path Fuzz --scratch-path .build-fuzz -c release --toolset .build-fuzz/toolset.json \
    -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -E "error|Build" | tail -5
binary=.build-fuzz/release/MembriaFuzz
[ -x "$binary" ] || { echo "error: the fuzz harness did not build" >&2; exit 1; }
# Under the sanitizer Swift's backtracer can hold a crashed run open.
export SWIFT_BACKTRACE=enable=no

if [ "$what" = seeds ]; then
    for target in $targets; do
        rm -rf "Fuzz/Corpus/$target"; mkdir -p "Fuzz/Corpus/$target"
        FUZZ_TARGET=$target FUZZ_WRITE_SEEDS="Fuzz/Corpus/$target" "$binary"
    done
    exit 0
fi

run() {
    local target=$1
    local work=.build-fuzz/corpus/$target crashes=.build-fuzz/crashes/$target
    mkdir -p "$work" "$crashes"
    cp -n Fuzz/Corpus/"$target"/* "$work"/ 2>/dev/null || true
    local log=.build-fuzz/$target.log
    set +e
    FUZZ_TARGET=$target "$binary" "$work" -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 \
        -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
    local status=$?
    set -e
    local runs
    runs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}')
    if [ $status -eq 0 ]; then
        echo "$target: ${runs:-?} executions in ${seconds} s, no crash (corpus $(ls "$work" | wc -l) inputs)"
    else
        echo "$target: CRASH after ${runs:-?} executions (exit $status); input in $crashes/, log in $log"
        grep -E "ERROR|Fatal error|precondition|SUMMARY" "$log" | head -5
        return 1
    fi
}

failed=0
if [ "$what" = all ]; then
    for target in $targets; do run "$target" || failed=1; done
else
    run "$what" || failed=1
fi
exit $failed
