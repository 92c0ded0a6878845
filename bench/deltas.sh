#!/usr/bin/env bash
# Delta patch sizes, generation time and peak memory for each format otter makes (esp-delta-ota,
# bsdiff, zstd). A measurement for docs/deltas.md, not a test; not run in CI.
#
#   bash bench/deltas.sh                 # all cases
#   DELTAS_KEEP=1 bash bench/deltas.sh   # keep the work directory (images, programs)
#
# Needs gcc (with the static glibc, libc6-dev) and /usr/bin/time; uses detools (PyPI, on PATH
# or in ~/.cache/otter-ci/venv) for a reference column when present. Cases:
#   (a) a 7-byte change (a version string overwritten; 7 bytes inserted) in an ESP-sized image,
#   (b) one C program built twice with a one-line source change, dynamically linked (small) and
#       statically linked (about the size of an ESP-IDF app),
#   (c) two builds of one real program: rustfmt from two Rust toolchains, when both are installed,
#   (d) 16 MiB images: generation time and peak memory (max RSS, /usr/bin/time -v) per format,
#   and, with DELTAS_EXTRA="OLD NEW [OLD NEW …]", sizes for those files (e.g. two releases of an
#   ESP-IDF app).
# Inputs that are not ESP app images are wrapped into one, so every format sees the same bytes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:$HOME/.cache/otter-ci/venv/bin"

echo "==> building the measuring program (release)"
cargo build --quiet --release -p otter-delta --example deltas
DELTAS="$ROOT/target/release/examples/deltas"

WORK="$(mktemp -d)"
if [[ "${DELTAS_KEEP:-0}" == "1" ]]; then
  echo "work directory: $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi
cd "$WORK"

# Prints the sizes of every format for BASE → TARGET, and detools' own heatshrink patch for
# comparison (the body of an esp-delta-ota patch is one; add the 64-byte header).
sizes() {
  local title="$1" base="$2" target="$3"
  echo
  echo "--- $title"
  "$DELTAS" sizes "$base" "$target"
  if command -v detools >/dev/null; then
    # Wrapped (unless already ESP app images) as `deltas sizes` wraps them.
    "$DELTAS" wrap "$base" ref-base.bin
    "$DELTAS" wrap "$target" ref-target.bin
    detools create_patch -c heatshrink ref-base.bin ref-target.bin ref.patch >/dev/null
    local n total
    n=$(($(stat -c %s ref.patch) + 64))
    total=$(stat -c %s ref-target.bin)
    printf '%-14s %10d bytes %7.2f %%   (detools create_patch -c heatshrink + 64-byte header)\n' \
      "reference" "$n" "$(echo "scale=4; 100 * $n / $total" | bc)"
  fi
}

# ---- (a), (b): one small C program, built twice ---------------------------------------------------
cat >prog.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

static const char VERSION[] = "fw 1.0.0";

static unsigned crc32(const unsigned char *p, size_t n) {
  unsigned crc = ~0u;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
  }
  return ~crc;
}

static double sensor(int i) { return 20.0 + 5.0 * sin(i / 10.0); }

int main(int argc, char **argv) {
  char line[256];
  double sum = 0;
  for (int i = 0; i < 100; i++) sum += sensor(i);
  snprintf(line, sizeof line, "%s avg=%.3f t=%ld", VERSION, sum / 100, (long)time(NULL));
  /*CHANGE*/
  printf("%s crc=%08x\n", line, crc32((const unsigned char *)line, strlen(line)));
  if (argc > 1) printf("arg %s = %ld\n", argv[1], strtol(argv[1], NULL, 0));
  return 0;
}
EOF
sed 's|/\*CHANGE\*/|if (sum > 2100) puts("warm");|' prog.c >prog2.c
for link in dynamic static; do
  flags=(-O2)
  [[ "$link" == static ]] && flags+=(-static)
  gcc "${flags[@]}" -o "prog-$link-1" prog.c -lm
  gcc "${flags[@]}" -o "prog-$link-2" prog2.c -lm
done

# (a) on the statically linked build: the version string, and 7 bytes inserted in the middle.
cp prog-static-1 seven-base
cp prog-static-1 seven-overwrite
offset=$(grep -abo 'fw 1.0.0' seven-base | head -1 | cut -d: -f1)
printf 'fw 1.0.1' | dd of=seven-overwrite bs=1 seek="$offset" conv=notrunc status=none
half=$(($(stat -c %s seven-base) / 2))
{ head -c "$half" seven-base; printf 'v1.0.1\n'; tail -c +"$((half + 1))" seven-base; } >seven-insert

sizes "(a) 7 bytes overwritten (version string) in a $(stat -c %s seven-base)-byte static program" \
  seven-base seven-overwrite
sizes "(a) 7 bytes inserted in the middle" seven-base seven-insert
sizes "(b) one-line source change, dynamically linked ($(stat -c %s prog-dynamic-1) bytes)" \
  prog-dynamic-1 prog-dynamic-2
sizes "(b) one-line source change, statically linked ($(stat -c %s prog-static-1) bytes)" \
  prog-static-1 prog-static-2

# ---- (c) two builds of one real program -----------------------------------------------------------
TOOLCHAINS="$HOME/.rustup/toolchains"
old="$(ls -d "$TOOLCHAINS"/1.*-x86_64-unknown-linux-gnu 2>/dev/null | sort -V | tail -1 || true)"
new="$TOOLCHAINS/nightly-x86_64-unknown-linux-gnu"
if [[ -n "$old" && -x "$old/bin/rustfmt" && -x "$new/bin/rustfmt" ]] &&
  ! cmp -s "$old/bin/rustfmt" "$new/bin/rustfmt"; then
  sizes "(c) rustfmt: $("$old/bin/rustfmt" --version) → $("$new/bin/rustfmt" --version)" \
    "$old/bin/rustfmt" "$new/bin/rustfmt"
else
  echo
  echo "--- (c) skipped: no two different rustfmt builds under $TOOLCHAINS"
fi

# ---- your own pairs ----------------------------------------------------------------------------
read -r -a extra <<<"${DELTAS_EXTRA:-}"
for ((i = 0; i + 1 < ${#extra[@]}; i += 2)); do
  sizes "${extra[i]} → ${extra[i + 1]}" "${extra[i]}" "${extra[i + 1]}"
done

# ---- (d) 16 MiB: generation time and peak memory --------------------------------------------------
# Real code (the largest programs on this machine, concatenated) rather than random bytes: a
# target with a change every MiB plus one 64 KiB insertion, and an unrelated target (the next
# 16 MiB of programs), the slow case.
MIB=$((1024 * 1024))
find /usr/bin /usr/lib -maxdepth 3 -type f -size +1M -print0 2>/dev/null | sort -z |
  xargs -0 cat 2>/dev/null | head -c $((32 * MIB - 8192)) >big-all || true
head -c $((16 * MIB - 4096)) big-all >big-payload
tail -c +$((16 * MIB - 4096 + 1)) big-all >big-payload-3
python3 - <<'PY'
data = bytearray(open("big-payload", "rb").read())
for i in range(1, 16):
    data[i * 1024 * 1024 : i * 1024 * 1024 + 7] = b"v9.9.9\0"
data[8 * 1024 * 1024 : 8 * 1024 * 1024] = bytes(range(256)) * 256
open("big-payload-2", "wb").write(data[: len(data) - 65536])
PY
"$DELTAS" wrap big-payload big-1.bin
"$DELTAS" wrap big-payload-2 big-2.bin
"$DELTAS" wrap big-payload-3 big-3.bin
for target in big-2.bin big-3.bin; do
  echo
  case "$target" in
    big-2.bin) echo "--- (d) $(stat -c %s "$target")-byte images (16 MiB), small changes: time and peak memory" ;;
    *) echo "--- (d) $(stat -c %s "$target")-byte images (16 MiB), unrelated contents: time and peak memory" ;;
  esac
  for format in esp-delta-ota bsdiff zstd; do
    /usr/bin/time -v "$DELTAS" one "$format" big-1.bin "$target" 2>time.log
    awk -F': ' '/Elapsed \(wall clock\)/ {w=$2} /Maximum resident set size/ {m=$2}
      END {printf "               wall %s, peak RSS %.0f MiB (includes the two 16 MiB images)\n", w, m/1024}' time.log
  done
done
echo
echo "cores: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
