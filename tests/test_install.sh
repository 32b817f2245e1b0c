#!/bin/sh
# make install into a temporary prefix, then build a program against it with pkg-config
# alone and check what it computes (run by `make test` through `make test-install`).
# Prints one line per check and "install: N passed, M failed"; writes the counts to
# build/install/tests/result.txt for tests/summarize.sh.
R=build/install/tests
mkdir -p "$R"
T="$(mktemp -d /tmp/normsharp-install-test.XXXXXX)"
P="$T/prefix"
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "[       OK ] $1"; }
bad() { fail=$((fail + 1)); echo "[  FAILED  ] $1: $2"; }
finish() {
  echo "$pass $fail 0" > "$R/result.txt"
  echo "install: $pass passed, $fail failed, 0 skipped"
  rm -rf "$T"
  [ "$fail" -eq 0 ]
  exit $?
}
export OPENBLAS_NUM_THREADS=1

if make --no-print-directory -s install PRECISION=float PREFIX="$P" > "$T/install.log" 2>&1; then
  ok "make install PREFIX=<tmp>"
else
  bad "make install PREFIX=<tmp>" "$(tail -5 "$T/install.log")"; finish
fi
for f in bin/normsharp lib/libnormsharp.a lib/libnormsharp.so include/normsharp/common.h \
         lib/pkgconfig/normsharp.pc share/man/man1/normsharp.1; do
  [ -e "$P/$f" ] || bad "installed files" "no $f"
done
soname=$(objdump -p "$P/lib/libnormsharp.so" 2>/dev/null | awk '/SONAME/ {print $2}')
case "$soname" in libnormsharp.so.[0-9]*) ok "libnormsharp.so has soname $soname" ;;
  *) bad "soname" "libnormsharp.so has soname '$soname'" ;; esac
if MANWIDTH=80 man -l "$P/share/man/man1/normsharp.1" 2>/dev/null | grep -q "eig-iters"; then
  ok "man page normsharp(1) renders and lists the options"
else
  bad "man page" "man -l normsharp.1 does not render the options"
fi

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
flags=$(pkg-config --cflags --libs normsharp 2>&1) || { bad "pkg-config normsharp" "$flags"; finish; }
if cc -std=c11 -o "$T/sharpness" tests/install/sharpness.c $flags 2> "$T/cc.log"; then
  ok "cc sharpness.c \$(pkg-config --cflags --libs normsharp)"
else
  bad "build against the installed library" "$(cat "$T/cc.log")"; finish
fi
sflags=$(pkg-config --static --cflags --libs normsharp)
if cc -std=c11 -o "$T/sharpness-static" tests/install/sharpness.c $(pkg-config --cflags normsharp) \
      "$P/lib/libnormsharp.a" $sflags 2> "$T/cc2.log"; then
  ok "static link with pkg-config --static (Libs.private)"
else
  bad "static link" "$(cat "$T/cc2.log")"
fi

# The program's sharpness equals the installed CLI's, bit for bit.
"$P/bin/normsharp" init --arch fc-tanh-16 --seed 3 --out "$T/w" > /dev/null 2>&1 || bad "init" "normsharp init failed"
cli=$("$P/bin/normsharp" sharpness --weights "$T/w" --n 300 --k 1 --trace-probes 0 --json 2>&1 |
      python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["final"]["sharpness"]))' 2>&1)
lib=$(LD_LIBRARY_PATH="$P/lib" "$T/sharpness" "$T/w" 300 2>&1 | python3 -c 'import sys; print(repr(float(sys.stdin.read())))' 2>&1)
if [ -n "$cli" ] && [ "$cli" = "$lib" ]; then
  ok "the program's sharpness equals the CLI's ($lib)"
else
  bad "sharpness" "program '$lib', CLI '$cli'"
fi
if [ -x "$T/sharpness-static" ]; then
  st=$(LD_LIBRARY_PATH=/nonexistent "$T/sharpness-static" "$T/w" 300 2>&1 | python3 -c 'import sys; print(repr(float(sys.stdin.read())))' 2>&1)
  [ "$st" = "$cli" ] && ok "the static program's sharpness equals the CLI's" || bad "static sharpness" "'$st' vs '$cli'"
fi

# A program compiled for the other precision must not link against this library.
if cc -std=c11 -DNS_DOUBLE=1 -o "$T/wrong" tests/install/sharpness.c $flags 2> "$T/cc3.log"; then
  bad "precision mismatch" "a double program linked against the float library"
elif grep -q "ns_precision_float64" "$T/cc3.log"; then
  ok "a double program does not link against the float library (ns_precision_float64)"
else
  bad "precision mismatch" "the link failed for another reason: $(head -3 "$T/cc3.log")"
fi

if make --no-print-directory -s uninstall PRECISION=float PREFIX="$P" > "$T/un.log" 2>&1 &&
   [ -z "$(find "$P" -type f -o -type l)" ]; then
  ok "make uninstall removes every installed file"
else
  bad "make uninstall" "left: $(find "$P" -type f -o -type l | head -5)"
fi
# DESTDIR: the files go under DESTDIR/PREFIX, the .pc still names PREFIX.
if make --no-print-directory -s install PRECISION=float DESTDIR="$T/stage" PREFIX=/opt/ns > "$T/d.log" 2>&1 &&
   [ -e "$T/stage/opt/ns/lib/libnormsharp.a" ] && grep -q '^prefix=/opt/ns$' "$T/stage/opt/ns/lib/pkgconfig/normsharp.pc"; then
  ok "DESTDIR staging"
else
  bad "DESTDIR staging" "$(tail -3 "$T/d.log")"
fi
finish
