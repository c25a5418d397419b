#!/bin/sh
#
# run-fuzzers.sh - build the fuzz harnesses with clang's libFuzzer and run
# each for a while on a copy of its seed corpus.  Called by "make fuzz":
#
#   sh tests/fuzz/run-fuzzers.sh SRCDIR SECONDS
#
# Every src/lib/*.c is compiled with ASan and UBSan (undefined behaviour
# aborts, so it counts as a crash) into an archive; each harness links
# only the modules it uses.  The corpus is copied first, so what libFuzzer
# adds does not flood the repository.  Prints executions and crashes per
# harness and exits non-zero if any harness crashed (its work directory,
# with the crashing inputs, is then kept and named).
#
# Environment:
#   FUZZ_HARNESSES  harnesses to run (default: policy config whitelist record spf)
#   FUZZ_WORKDIR    work directory to use and keep (default: a temp dir,
#                   removed when nothing crashed)
#   CLANG           the compiler (default: clang)
#   FUZZ_FLAGS      extra libFuzzer flags, e.g. "-jobs=2 -workers=2"

set -u

srcdir=${1:?usage: run-fuzzers.sh SRCDIR SECONDS}
seconds=${2:-60}
harnesses=${FUZZ_HARNESSES:-policy config whitelist record spf}
CLANG=${CLANG:-clang}

case $seconds in
''|*[!0-9]*) echo "run-fuzzers.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2 ;;
esac

# ---- a clang that can build libFuzzer binaries -----------------------------

probe_fuzzer() {
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$work/probe.c"
	"$CLANG" -fsanitize=fuzzer,address,undefined "$work/probe.c" \
		-o "$work/probe" >"$work/probe.log" 2>&1
}

apt_install() {
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		return 1
	fi
	echo "run-fuzzers.sh: installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$work/apt.log" 2>&1 ||
		{ apt-get update -q >/dev/null 2>&1 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$work/apt.log" 2>&1; }
}

if [ -n "${FUZZ_WORKDIR:-}" ]; then
	work=$FUZZ_WORKDIR
	keep=yes
	mkdir -p "$work" || exit 2
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/greyhold-fuzz.XXXXXX") || exit 2
	keep=no
fi

if ! command -v "$CLANG" >/dev/null 2>&1; then
	apt_install clang || { echo "run-fuzzers.sh: $CLANG not found; install clang" >&2; exit 2; }
fi
if ! probe_fuzzer; then
	major=$("$CLANG" -dumpversion | cut -d. -f1)
	apt_install "libclang-rt-$major-dev" || true
	if ! probe_fuzzer; then
		echo "run-fuzzers.sh: $CLANG cannot link -fsanitize=fuzzer" \
			"(install libclang-rt-$major-dev):" >&2
		cat "$work/probe.log" >&2
		exit 2
	fi
fi

# ---- build ----------------------------------------------------------------------

version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$srcdir/configure.ac")
defs="-D_GNU_SOURCE -DSYSCONFDIR=\"/etc\" -DLOCALSTATEDIR=\"/var\"
      -DPACKAGE_VERSION=\"${version:-fuzz}\""
cflags="-g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wall"

mkdir -p "$work/obj" "$work/bin" "$work/tmp"
echo "run-fuzzers.sh: building in $work"
for c in "$srcdir"/src/lib/*.c; do
	o="$work/obj/$(basename "$c" .c).o"
	# shellcheck disable=SC2086
	"$CLANG" $cflags $defs -fsanitize=fuzzer-no-link,address,undefined \
		-I "$srcdir/src/lib" -c "$c" -o "$o" || exit 2
done
rm -f "$work/libgreyhold-fuzz.a"
ar rcs "$work/libgreyhold-fuzz.a" "$work"/obj/*.o || exit 2
for h in $harnesses; do
	# shellcheck disable=SC2086
	"$CLANG" $cflags $defs -fsanitize=fuzzer,address,undefined \
		-I "$srcdir/src/lib" "$srcdir/tests/fuzz/fuzz_$h.c" \
		"$work/libgreyhold-fuzz.a" -llmdb -lpcre2-8 -lpthread \
		-o "$work/bin/fuzz_$h" || exit 2
done

# ---- run --------------------------------------------------------------------------

max_len() {
	case $1 in
	policy) echo 20000 ;;	# past POLICY_MAX_REQUEST
	config) echo 8192 ;;	# past the 4096-byte line
	whitelist) echo 4096 ;;
	record) echo 64 ;;
	spf) echo 12288 ;;	# past SPF_RECORD_MAX, with room for answers
	*) echo 4096 ;;
	esac
}

status=0
summary=""
for h in $harnesses; do
	corpus="$work/corpus/$h"
	artifacts="$work/artifacts/$h"
	rm -rf "$corpus" "$artifacts"
	mkdir -p "$corpus" "$artifacts"
	cp "$srcdir/tests/fuzz/corpus/$h"/* "$corpus"/ 2>/dev/null
	echo "run-fuzzers.sh: fuzzing $h for ${seconds}s"
	# shellcheck disable=SC2086
	TMPDIR="$work/tmp" UBSAN_OPTIONS=print_stacktrace=1 \
		"$work/bin/fuzz_$h" -max_total_time="$seconds" \
		-max_len="$(max_len "$h")" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" ${FUZZ_FLAGS:-} "$corpus" \
		>"$work/$h.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$h.log" |
		awk '{ n += $1 } END { print n + 0 }')
	crashes=$(find "$artifacts" -type f | wc -l)
	if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
		crashes="1 (exit $rc, no artifact)"
	fi
	line=$(printf '%-10s %12s execs  %4s corpus  crashes: %s' "$h" "$execs" \
		"$(ls "$corpus" | wc -l)" "$crashes")
	summary="$summary$line
"
	if [ "$crashes" != 0 ]; then
		status=1
		grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|^==[0-9]+== ?ERROR' \
			"$work/$h.log" | sed "s/^/  $h: /"
		for a in "$artifacts"/*; do
			[ -f "$a" ] && echo "  $h: crashing input: $a"
		done
		echo "  $h: full log: $work/$h.log"
	fi
done

printf '\n%s' "$summary"
if [ "$status" -ne 0 ]; then
	echo "run-fuzzers.sh: crashes found; work directory kept: $work"
	echo "  reproduce: $work/bin/fuzz_NAME CRASH-FILE"
elif [ "$keep" = yes ]; then
	echo "run-fuzzers.sh: work directory kept: $work"
else
	rm -rf "$work"
fi
exit "$status"
