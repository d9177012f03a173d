#!/usr/bin/env bash
# Benchmarks one live "slice": a single 60 s 720p 3 Mb/s stream published in real time, packaged
# to HLS by hawker and, on the same input in the same run, by nginx with Debian's RTMP module.
# Prints server CPU seconds, peak RSS and publish -> first segment latency for each, and the
# ratios hawker/nginx. See bench/README.md.
#
# Usage: bench/slice.sh [--runs N] [--only hawker|nginx] [--keep]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out"
INPUT="$OUT/test720.flv"
HAWKER="${HAWKER_BIN:-$ROOT/target/release/hawker}"
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
RUNS=1
ONLY=""
KEEP=0

# Seconds to wait for things that should take far less.
READY_TIMEOUT=30        # server start
FIRST_SEG_TIMEOUT=30    # publish -> first segment
SETTLE_QUIET=3          # after the publisher exits: playlist unchanged this long = last segment written
SETTLE_TIMEOUT=30

die() { echo "slice.sh: $*" >&2; exit 1; }
log() { echo "[slice] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="${2:-}"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --only) ONLY="${2:-}"; shift 2 ;;
    --only=*) ONLY="${1#*=}"; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive integer"
case "$ONLY" in ""|hawker|nginx) ;; *) die "--only takes hawker or nginx" ;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# ---------------------------------------------------------------- prerequisites
for tool in ffmpeg curl getconf awk; do
  command -v "$tool" >/dev/null || die "$tool not found (make bench installs what it needs)"
done
if want hawker; then
  [ -x "$HAWKER" ] || die "hawker binary not found at $HAWKER: build it first (cargo build --release --locked, or make bench)"
fi
if want nginx; then
  NGINX=$(command -v nginx || true)
  [ -n "$NGINX" ] || [ ! -x /usr/sbin/nginx ] || NGINX=/usr/sbin/nginx
  command -v pgrep >/dev/null || die "pgrep not found (procps)"
  [ -n "$NGINX" ] || die "nginx not found: ./scripts/install-debs nginx-light libnginx-mod-rtmp"
  [ -f "$RTMP_MODULE" ] || RTMP_MODULE=$(dpkg -L libnginx-mod-rtmp 2>/dev/null | grep -m1 '/ngx_rtmp_module\.so$' || true)
  [ -n "$RTMP_MODULE" ] && [ -f "$RTMP_MODULE" ] || die "ngx_rtmp_module.so not found: ./scripts/install-debs libnginx-mod-rtmp"
fi
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- input, made once
if [ ! -s "$INPUT" ]; then
  mkdir -p "$OUT"
  log "making the 60 s 720p input once: $INPUT (takes about a minute)"
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 \
    -c:v libx264 -preset veryfast -b:v 3M -maxrate 3M -bufsize 6M -g 60 -keyint_min 60 -sc_threshold 0 \
    -pix_fmt yuv420p -profile:v high -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$INPUT.tmp"
  mv "$INPUT.tmp" "$INPUT"
fi

# ---------------------------------------------------------------- scratch space and cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hawker-slice.XXXXXX")
SERVER_PID=""
PUB_PID=""
cleanup() {
  local pid
  # The publisher runs inside a subshell: stop its ffmpeg child first.
  [ -n "$PUB_PID" ] && pkill -TERM -P "$PUB_PID" 2>/dev/null || true
  for pid in $PUB_PID $SERVER_PID; do
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $PUB_PID $SERVER_PID; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- small helpers (no forks where it matters)
now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# utime+stime clock ticks of a process (all its threads).
ticks() {
  local line f
  read -r line < "/proc/$1/stat" || { echo 0; return; }
  line=${line##*) }             # drop "pid (comm) ", comm may hold spaces
  read -ra f <<< "$line"        # f[0] is field 3 (state): utime is field 14, stime 15
  echo $(( f[11] + f[12] ))
}
ticks_sum() { local t=0 p; for p in "$@"; do t=$(( t + $(ticks "$p") )); done; echo "$t"; }

# Peak resident set (VmHWM) of a process, in kB.
hwm_kb() {
  local k v _
  while read -r k v _; do
    [ "$k" = "VmHWM:" ] && { echo "$v"; return; }
  done < "/proc/$1/status"
  echo 0
}

# A free loopback TCP port (nothing answers on it and ss does not list it).
free_port() {
  local port i
  for i in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    if command -v ss >/dev/null && ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then continue; fi
    echo "$port"; return
  done
  die "no free port found"
}

# Playlist text of the server under test, or "" if it is not there yet.
PLAYLIST=""
fetch_playlist() {
  case "$SERVER" in
    hawker) PLAYLIST=$(curl -fsS --max-time 2 "http://$HAWKER_HTTP/hls/$PLAYBACK_ID/v0/index.m3u8" 2>/dev/null || true) ;;
    nginx)
      local lines=()
      [ -f "$NGINX_PLAYLIST" ] && mapfile -t lines < "$NGINX_PLAYLIST" 2>/dev/null || true
      PLAYLIST=$(printf '%s\n' "${lines[@]}")
      ;;
  esac
}
extinf_count() { local n=0 l; while IFS= read -r l; do [[ "$l" == "#EXTINF"* ]] && n=$((n + 1)); done <<< "$1"; echo "$n"; }
extinf_sum() { awk -F'[:,]' '/^#EXTINF/ { s += $2 } END { printf "%.1f", s }' <<< "$1"; }

# Hides the stream key in anything shown.
scrub() { if [ -n "${STREAM_KEY:-}" ]; then sed "s/$STREAM_KEY/<stream-key>/g"; else cat; fi; }

# ---------------------------------------------------------------- servers
start_hawker() {
  local dir="$TMP/hawker-$1" line
  mkdir -p "$dir"
  "$HAWKER" --data-dir "$dir/data" serve --http 127.0.0.1:0 --rtmp 127.0.0.1:0 --public-host 127.0.0.1 \
    > "$dir/stdout" 2> "$dir/stderr" &
  SERVER_PID=$!
  SERVER_PIDS=("$SERVER_PID")
  SERVER_LOG="$dir/stderr"
  local deadline=$(( SECONDS + READY_TIMEOUT ))
  until line=$(grep -m1 'hawker ready' "$dir/stderr" 2>/dev/null); do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$dir/stderr" >&2; die "hawker exited during start"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$dir/stderr" >&2; die "hawker not ready after ${READY_TIMEOUT}s"; }
    sleep 0.05
  done
  line=$(sed 's/\x1b\[[0-9;]*m//g' <<< "$line")
  HAWKER_HTTP=$(grep -o 'http=[0-9.:]*' <<< "$line" | head -n1 | cut -d= -f2)
  local rtmp; rtmp=$(grep -o 'rtmp=[0-9.:]*' <<< "$line" | head -n1 | cut -d= -f2)
  [ -n "$HAWKER_HTTP" ] && [ -n "$rtmp" ] || die "could not read the addresses from hawker's ready line"
  # The demo stream seeded on first start (printed once, on stdout).
  STREAM_KEY=$(awk '/Stream key:/ { print $3; exit }' "$dir/stdout")
  PLAYBACK_ID=$(awk '/Playback URL:/ { print $3; exit }' "$dir/stdout" | sed -E 's#.*/hls/([^/]+)/.*#\1#')
  [ -n "$STREAM_KEY" ] && [ -n "$PLAYBACK_ID" ] || die "hawker did not print a demo stream key and playback URL on first start"
  PUBLISH_URL="rtmp://$rtmp/live/$STREAM_KEY"
}

start_nginx() {
  local dir="$TMP/nginx-$1" port
  mkdir -p "$dir/hls" "$dir/logs"
  port=$(free_port)
  # As root the workers would drop to nobody and could not write into our private temp dir.
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root root;"
  cat > "$dir/nginx.conf" <<EOF
load_module $RTMP_MODULE;
$user_line
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 256; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path $dir/hls;
      hls_fragment 2s;
      hls_playlist_length 120s;
    }
  }
}
EOF
  "$NGINX" -c "$dir/nginx.conf" -p "$dir" -e "$dir/logs/error.log" > "$dir/logs/stdout" 2>&1 &
  SERVER_PID=$!
  SERVER_LOG="$dir/logs/error.log"
  local deadline=$(( SECONDS + READY_TIMEOUT ))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/logs/stdout" "$dir/logs/error.log" >&2 2>/dev/null; die "nginx exited during start"; }
    [ "$SECONDS" -lt "$deadline" ] || die "nginx not listening after ${READY_TIMEOUT}s"
    sleep 0.05
  done
  # Master plus its worker(s): the workers do the RTMP and HLS work.
  local workers=()
  until [ "${#workers[@]}" -gt 0 ] || [ "$SECONDS" -ge "$deadline" ]; do
    mapfile -t workers < <(pgrep -P "$SERVER_PID" || true)
    [ "${#workers[@]}" -gt 0 ] || sleep 0.05
  done
  [ "${#workers[@]}" -gt 0 ] || die "no nginx worker process found"
  SERVER_PIDS=("$SERVER_PID" "${workers[@]}")
  STREAM_KEY=""   # nginx takes any name: nothing secret
  NGINX_PLAYLIST="$dir/hls/bench.m3u8"
  PUBLISH_URL="rtmp://127.0.0.1:$port/live/bench"
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# ---------------------------------------------------------------- one measured publish
# Sets R_CPU R_RSS R_FIRST R_LAST R_MEDIA R_SEGS R_PUBCPU
measure() {
  SERVER=$1
  local run=$2 dir="$TMP/$1-$2"
  "start_$SERVER" "$run"
  sleep 1   # let start-up work finish before the baseline

  local t0_ticks; t0_ticks=$(ticks_sum "${SERVER_PIDS[@]}")
  local t0; t0=$(now)
  (
    ffmpeg -nostdin -hide_banner -loglevel error -re -i "$INPUT" -c copy -f flv "$PUBLISH_URL"
    rc=$?
    times > "$dir/ffmpeg.times"
    exit $rc
  ) > "$dir/ffmpeg.log" 2>&1 &
  PUB_PID=$!

  # Fast poll until the playlist lists a segment.
  local first=""
  while :; do
    fetch_playlist
    if [ "$(extinf_count "$PLAYLIST")" -ge 1 ]; then first=$(now); break; fi
    if ! kill -0 "$PUB_PID" 2>/dev/null; then
      scrub < "$dir/ffmpeg.log" | tail -n 20 >&2; tail -n 20 "$SERVER_LOG" | scrub >&2
      die "$SERVER: the publisher ended before any segment was listed"
    fi
    if [ "$(sub "$(now)" "$t0" | cut -d. -f1)" -ge "$FIRST_SEG_TIMEOUT" ]; then
      tail -n 20 "$SERVER_LOG" | scrub >&2
      die "$SERVER: no segment listed ${FIRST_SEG_TIMEOUT}s after publish start"
    fi
    sleep 0.03
  done
  R_FIRST=$(sub "$first" "$t0")
  log "run $run $SERVER: first segment listed after ${R_FIRST}s; publishing for the rest of the 60 s"

  # The publisher runs in real time; no polling meanwhile (it would cost the server).
  local prc=0
  wait "$PUB_PID" || prc=$?
  PUB_PID=""
  local pub_end; pub_end=$(now)
  if [ "$prc" -ne 0 ]; then
    scrub < "$dir/ffmpeg.log" | tail -n 20 >&2
    die "$SERVER: the publisher (ffmpeg) failed with status $prc"
  fi

  # Wait for the last segment: ENDLIST, or the playlist unchanged for SETTLE_QUIET s.
  local last_text="" last_change="$pub_end" t
  fetch_playlist; last_text=$PLAYLIST
  while :; do
    sleep 0.25
    fetch_playlist
    t=$(now)
    if [ "$PLAYLIST" != "$last_text" ]; then last_text=$PLAYLIST; last_change=$t; fi
    [[ "$PLAYLIST" == *"#EXT-X-ENDLIST"* ]] && break
    awk -v a="$t" -v b="$last_change" -v q="$SETTLE_QUIET" 'BEGIN { exit !(a - b >= q) }' && break
    awk -v a="$t" -v b="$pub_end" -v q="$SETTLE_TIMEOUT" 'BEGIN { exit !(a - b >= q) }' && {
      log "run $run $SERVER: playlist still changing ${SETTLE_TIMEOUT}s after the publisher ended; measuring anyway"; break; }
  done
  local t1_ticks; t1_ticks=$(ticks_sum "${SERVER_PIDS[@]}")
  R_CPU=$(awk -v a="$t0_ticks" -v b="$t1_ticks" -v c="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / c }')
  local kb=0 p
  for p in "${SERVER_PIDS[@]}"; do kb=$(( kb + $(hwm_kb "$p") )); done
  R_RSS=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
  R_LAST=$(sub "$last_change" "$pub_end")

  # What was packaged: every segment since go-live (hawker's replay playlist; nginx lists them all).
  local all=$PLAYLIST
  if [ "$SERVER" = hawker ]; then
    all=$(curl -fsS --max-time 2 "http://$HAWKER_HTTP/hls/$PLAYBACK_ID/v0/replay.m3u8" 2>/dev/null || echo "$PLAYLIST")
  fi
  R_MEDIA=$(extinf_sum "$all")
  R_SEGS=$(extinf_count "$all")
  R_PUBCPU=$(awk 'NR == 2 { n = split($0, f, " "); s = 0
      for (i = 1; i <= n; i++) { split(f[i], ms, /[ms]/); s += ms[1] * 60 + ms[2] } printf "%.2f", s }' "$dir/ffmpeg.times")
  stop_server
  log "run $run $SERVER: cpu ${R_CPU}s, peak RSS ${R_RSS} MB, first segment ${R_FIRST}s," \
      "last segment ${R_LAST}s after the publisher ended, ${R_SEGS} segments / ${R_MEDIA}s listed, publisher cpu ${R_PUBCPU}s"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A VALS
SERVERS=()
want hawker && SERVERS+=(hawker)
want nginx && SERVERS+=(nginx)
FIGS=(cpu rss first last media segs pubcpu)

log "input: $INPUT ($(du -h "$INPUT" | cut -f1)); runs: $RUNS; servers: ${SERVERS[*]} (one at a time)"
for run in $(seq 1 "$RUNS"); do
  for s in "${SERVERS[@]}"; do
    mkdir -p "$TMP/$s-$run"
    measure "$s" "$run"
    VALS[$s,cpu]+=" $R_CPU"; VALS[$s,rss]+=" $R_RSS"; VALS[$s,first]+=" $R_FIRST"; VALS[$s,last]+=" $R_LAST"
    VALS[$s,media]+=" $R_MEDIA"; VALS[$s,segs]+=" $R_SEGS"; VALS[$s,pubcpu]+=" $R_PUBCPU"
  done
done

# ---------------------------------------------------------------- table
fig() { [ -n "${VALS[$1,$2]:-}" ] && median ${VALS[$1,$2]} || echo ""; }
row() {  # label key format
  local h n ratio
  h=$(fig hawker "$2"); n=$(fig nginx "$2")
  ratio=$(awk -v h="$h" -v n="$n" 'BEGIN { if (h == "" || n == "" || n + 0 == 0) print "-"; else printf "%.2f", h / n }')
  [ -n "$h" ] && h=$(printf "$3" "$h") || h="-"
  [ -n "$n" ] && n=$(printf "$3" "$n") || n="-"
  printf '%-36s %10s %12s %14s\n' "$1" "$h" "$n" "$ratio"
}
echo
[ "$RUNS" -gt 1 ] && echo "median of $RUNS runs"
printf '%-36s %10s %12s %14s\n' "figure" "hawker" "nginx-rtmp" "hawker/nginx"
row "server CPU-s (60 s stream)" cpu "%.2f"
row "peak RSS (MB)" rss "%.1f"
row "publish -> first segment (s)" first "%.2f"
echo "context:"
row "  publisher (ffmpeg -c copy) CPU-s" pubcpu "%.2f"
row "  publisher end -> last segment (s)" last "%.2f"
row "  media listed at the end (s)" media "%.1f"
row "  segments listed at the end" segs "%.0f"
echo
echo "CPU: utime+stime from /proc/PID/stat, from just before publish to the last segment (nginx: master + worker)."
echo "RSS: VmHWM from /proc/PID/status (nginx: master + worker, summed)."
