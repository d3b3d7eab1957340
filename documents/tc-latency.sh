#!/usr/bin/env bash
#
# Game-day network latency injection for the region-failover runbook.
#
# Adds a netem qdisc as the root qdisc of one network interface, holds it for
# a fixed duration, then removes exactly the qdisc it added. Intended to be run
# by an SSM Run Command document (aws:runShellScript) on Amazon Linux 2023.
#
# Parameters (flags take precedence over environment variables):
#   --delay-ms N          DELAY_MS          added delay, 1..60000 (required)
#   --jitter-ms N         JITTER_MS         jitter, 0..delay (default 0)
#   --duration-seconds N  DURATION_SECONDS  hold time, 1..86400 (required)
#   --interface IF        INTERFACE         default: interface of the default route
#
# The qdisc is added with a handle unique to this run. On exit, on the end of
# the duration and on SIGTERM/SIGINT/SIGHUP, that handle is removed if (and
# only if) it is still the root qdisc of the interface.
#
# Exit codes:
#   0    latency was applied for the full duration and removed
#   1    operational failure (tc/ip missing, tc command failed, cleanup failed)
#   2    invalid parameters (nothing was changed)
#   3    refused: netem or a non-default root qdisc already present (nothing was changed)
#   128+N  interrupted by signal N after removing the added qdisc

set -eu

PROG=tc-latency
PATH=${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin
export PATH

ts() {
    date -u '+%Y-%m-%dT%H:%M:%SZ'
}

log() {
    printf '%s %s[%s]: %s\n' "$(ts)" "$PROG" "$$" "$*"
}

warn() {
    printf '%s %s[%s]: WARNING: %s\n' "$(ts)" "$PROG" "$$" "$*" >&2
}

die() {
    _code=$1
    shift
    printf '%s %s[%s]: ERROR: %s\n' "$(ts)" "$PROG" "$$" "$*" >&2
    exit "$_code"
}

usage() {
    cat <<'USAGE'
Usage: tc-latency.sh --delay-ms N --duration-seconds N [--jitter-ms N] [--interface IF]

Adds "tc qdisc ... root netem delay <N>ms [<J>ms]" on IF for the duration, then
removes it. Environment variables DELAY_MS, JITTER_MS, DURATION_SECONDS and
INTERFACE are used for parameters not given as flags.
USAGE
}

# require_uint NAME VALUE MIN MAX: print VALUE as a plain decimal integer if it
# is one within MIN..MAX; otherwise exit 2 with a one-line error.
require_uint() {
    _name=$1
    _raw=$2
    _min=$3
    _max=$4
    _msg="invalid $_name '$_raw': must be an integer from $_min to $_max"
    case $_raw in
        '' | *[!0-9]*) die 2 "$_msg" ;;
    esac
    _val=$_raw
    while :; do
        case $_val in
            0?*) _val=${_val#0} ;;
            *) break ;;
        esac
    done
    [ "${#_val}" -le 9 ] || die 2 "$_msg"
    [ "$_val" -ge "$_min" ] && [ "$_val" -le "$_max" ] || die 2 "$_msg"
    printf '%s' "$_val"
}

default_route_interface() {
    for _family in -4 -6; do
        _dev=$(ip "$_family" route show default 2>/dev/null |
            awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
        if [ -n "$_dev" ]; then
            printf '%s' "$_dev"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- parameters

DELAY_RAW=${DELAY_MS-}
JITTER_RAW=${JITTER_MS-0}
DURATION_RAW=${DURATION_SECONDS-}
IFACE=${INTERFACE-}

need_value() {
    [ "$2" -ge 2 ] || die 2 "missing value for $1"
}

while [ "$#" -gt 0 ]; do
    case $1 in
        --delay-ms) need_value "$1" "$#"; DELAY_RAW=$2; shift 2 ;;
        --delay-ms=*) DELAY_RAW=${1#*=}; shift ;;
        --jitter-ms) need_value "$1" "$#"; JITTER_RAW=$2; shift 2 ;;
        --jitter-ms=*) JITTER_RAW=${1#*=}; shift ;;
        --duration-seconds) need_value "$1" "$#"; DURATION_RAW=$2; shift 2 ;;
        --duration-seconds=*) DURATION_RAW=${1#*=}; shift ;;
        --interface) need_value "$1" "$#"; IFACE=$2; shift 2 ;;
        --interface=*) IFACE=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die 2 "unknown argument '$1' (see --help)" ;;
    esac
done

[ -n "$DELAY_RAW" ] || die 2 "missing delay: pass --delay-ms N or set DELAY_MS"
[ -n "$DURATION_RAW" ] || die 2 "missing duration: pass --duration-seconds N or set DURATION_SECONDS"
[ -n "$JITTER_RAW" ] || JITTER_RAW=0

DELAY=$(require_uint delay-ms "$DELAY_RAW" 1 60000)
JITTER=$(require_uint jitter-ms "$JITTER_RAW" 0 "$DELAY")
DURATION=$(require_uint duration-seconds "$DURATION_RAW" 1 86400)

command -v ip >/dev/null 2>&1 || die 1 "'ip' not found (install iproute)"
command -v tc >/dev/null 2>&1 || die 1 "'tc' not found (install iproute-tc)"

if [ -z "$IFACE" ]; then
    IFACE=$(default_route_interface) ||
        die 2 "no interface given and no default route found: pass --interface IF or set INTERFACE"
fi
case $IFACE in
    *[!A-Za-z0-9_.-]* | -*) die 2 "invalid interface name '$IFACE'" ;;
esac
[ "${#IFACE}" -le 15 ] || die 2 "invalid interface name '$IFACE': longer than 15 characters"
ip link show dev "$IFACE" >/dev/null 2>&1 || die 2 "interface '$IFACE' does not exist"

# ---------------------------------------------------------------- preflight

BEFORE=$(tc qdisc show dev "$IFACE") || die 1 "cannot read qdiscs of '$IFACE'"

if printf '%s\n' "$BEFORE" | grep -q '^qdisc netem '; then
    die 3 "refusing to stack latency: a netem qdisc is already present on '$IFACE' ($(printf '%s\n' "$BEFORE" | grep '^qdisc netem ' | head -n 1)); nothing was changed"
fi

ROOT_LINE=$(printf '%s\n' "$BEFORE" | grep ' root' | head -n 1 || true)
ROOT_HANDLE=$(printf '%s\n' "$ROOT_LINE" | awk '{ print $3 }')
if [ -n "$ROOT_HANDLE" ] && [ "$ROOT_HANDLE" != "0:" ]; then
    die 3 "refusing to replace the non-default root qdisc on '$IFACE' ($ROOT_LINE); nothing was changed"
fi

# A handle unique to this run, below the kernel's auto-allocated 8000: range.
HANDLE=$(printf '%x' $((4096 + $$ % 28672)))

if [ "$JITTER" -gt 0 ]; then
    DELAY_SPEC="delay ${DELAY}ms ${JITTER}ms"
else
    DELAY_SPEC="delay ${DELAY}ms"
fi

# ---------------------------------------------------------------- cleanup

ADD_ATTEMPTED=0
ADDED=0
CLEANED=0
SLEEP_PID=

our_qdisc_present() {
    tc qdisc show dev "$IFACE" 2>/dev/null | grep -q "^qdisc netem $HANDLE: root "
}

# Removes the qdisc this run added, and nothing else. Returns 1 if it is
# still present afterwards.
cleanup() {
    set +e
    if [ -n "$SLEEP_PID" ]; then
        kill "$SLEEP_PID" 2>/dev/null
        SLEEP_PID=
    fi
    [ "$ADD_ATTEMPTED" -eq 1 ] && [ "$CLEANED" -eq 0 ] || return 0
    CLEANED=1
    if ! our_qdisc_present; then
        [ "$ADDED" -eq 1 ] || return 0
        warn "netem qdisc $HANDLE: is no longer the root qdisc of '$IFACE'; not removing anything"
        return 0
    fi
    log "removing: tc qdisc del dev $IFACE root handle $HANDLE:"
    if tc qdisc del dev "$IFACE" root handle "$HANDLE:"; then
        log "latency removed from '$IFACE'; now: $(tc qdisc show dev "$IFACE" 2>/dev/null | grep ' root' | head -n 1)"
        return 0
    fi
    if our_qdisc_present; then
        printf '%s %s[%s]: ERROR: failed to remove netem qdisc %s: from %s; remove it with: tc qdisc del dev %s root handle %s:\n' \
            "$(ts)" "$PROG" "$$" "$HANDLE" "$IFACE" "$IFACE" "$HANDLE" >&2
        return 1
    fi
    return 0
}

on_exit() {
    _status=$?
    trap '' INT TERM HUP
    [ "$ADDED" -eq 0 ] || [ "$CLEANED" -eq 1 ] || warn "stopping early (exit status $_status), removing latency"
    cleanup || _status=1
    exit "$_status"
}

on_signal() {
    trap '' INT TERM HUP
    log "received SIG$1, removing latency early"
    trap - EXIT
    cleanup || exit 1
    exit $((128 + $2))
}

trap on_exit EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM
trap 'on_signal HUP 1' HUP

# ---------------------------------------------------------------- run

log "interface=$IFACE delay=${DELAY}ms jitter=${JITTER}ms duration=${DURATION}s"
log "current root qdisc: ${ROOT_LINE:-none}"
log "adding: tc qdisc add dev $IFACE root handle $HANDLE: netem $DELAY_SPEC"
ADD_ATTEMPTED=1
# shellcheck disable=SC2086
tc qdisc add dev "$IFACE" root handle "$HANDLE:" netem $DELAY_SPEC ||
    die 1 "tc qdisc add failed on '$IFACE' (is the sch_netem kernel module available?)"
ADDED=1
log "latency active: $(tc qdisc show dev "$IFACE" | grep "^qdisc netem $HANDLE: " || true)"

log "holding for ${DURATION}s"
sleep "$DURATION" &
SLEEP_PID=$!
wait "$SLEEP_PID"
SLEEP_PID=

log "duration elapsed"
trap - EXIT
cleanup || exit 1
log "done"
