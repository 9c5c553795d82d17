#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-launch builds the mpirun command line it promises: --dry-run prints it
# shell-quoted, and reading that text back as a shell would gives the exact
# argv checked here. Bad options fail with a message naming the option and
# value; hostfile lines of any length are read whole, and a line that is not
# Open MPI's "host [slots=N] [max_slots=N]" is refused with its file, number
# and text; a missing --nvme-path directory is created (not by --dry-run).
# Across hosts: --ranks-per-host (ppr:N:node, -np hosts x N, a -n that
# disagrees refused), --launch-agent (plm_rsh_agent, an absolute path to an
# executable), --net (shared memory within a host, TCP on that network between
# hosts; malformed or absent networks refused), --mca (repeatable, replacing an
# option's value), and the OMPI_MCA_* variables --dry-run lists. A real
# two-rank run shows arguments reach the program unchanged and each output
# line is tagged once.
#   launch_dry_run.sh ZERO_LAUNCH
# '$HOME' below is meant literally: it must reach the program unexpanded.
# shellcheck disable=SC2016
source "$(dirname "$0")/common.sh"
ZL=$1
SELF=$(readlink -f "$ZL")
CORES=$("$ZL" --topology | awk '/^cores:/ {print $2}')
[[ $CORES =~ ^[0-9]+$ ]] || fail "--topology printed no core count"
HEAD=(mpirun)
TAIL=(--tag-output -x ZRT_LOG_RANK_PREFIX=0)

# dry ARGS... : runs --dry-run; the command line, read back, lands in ARGV.
dry() {
    "$ZL" --dry-run "$@" >"$WORK/out" 2>"$WORK/err" ||
        { cat "$WORK/err"; fail "--dry-run $* exited non-zero"; }
    eval "ARGV=($(cat "$WORK/out"))"
}
# expect_argv WORD... : ARGV is exactly these words.
expect_argv() {
    [[ "${ARGV[*]@Q}" == "${*@Q}" ]] ||
        fail "argv: got ${ARGV[*]@Q}; expected ${*@Q}"
}
has() { grep -qF -- "$1" "$WORK/out" || fail "no '$1' in: $(cat "$WORK/out")"; }
lacks() { ! grep -qF -- "$1" "$WORK/out" || fail "'$1' in: $(cat "$WORK/out")"; }
# refused PATTERN ARGS... : zero-launch ARGS exits non-zero saying PATTERN.
refused() {
    local pattern=$1; shift
    if "$ZL" "$@" >"$WORK/out" 2>&1; then fail "accepted: $*"; fi
    grep -qF -- "$pattern" "$WORK/out" || fail "no '$pattern' for $*: $(cat "$WORK/out")"
}
over() { (($1 > CORES)) && echo --oversubscribe; }
pe() { echo $((CORES / $1 > 1 ? CORES / $1 : 1)); }

# One host, exact argv; more ranks than cores adds --oversubscribe.
dry -n 2 --bind none /bin/echo hi
# shellcheck disable=SC2046 # over prints nothing or one word
expect_argv "${HEAD[@]}" -np 2 $(over 2) --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- /bin/echo hi
dry -n "$CORES" prog
lacks --oversubscribe
dry -n $((CORES + 2)) prog
has "-np $((CORES + 2)) --oversubscribe"

# Binding flags.
dry -n 1 --bind core prog
expect_argv "${HEAD[@]}" -np 1 --map-by "slot:PE=$CORES" --bind-to core "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog
if ((CORES >= 2)); then
    dry -n 2 --bind core prog
    has "--map-by slot:PE=$(pe 2) --bind-to core"
fi
dry -n 1 --bind numa prog
has "-np 1 --map-by numa --bind-to numa --tag-output"
dry -n 1 --bind socket prog
has "-np 1 --map-by socket --bind-to socket --tag-output"
dry -n 1 --bind none prog
has "-np 1 --bind-to none --tag-output"
lacks --map-by
dry -n $((CORES + 2)) --bind core prog
has "--oversubscribe --bind-to none --tag-output"
grep -q "binding to cores is off" "$WORK/err" || fail "no note on oversubscribed core binding"

# A hostfile: its slots are the default rank count; more ranks oversubscribe.
printf '# this host\nlocalhost slots=2  # two ranks\n\n' >"$WORK/hosts"
dry --hostfile "$WORK/hosts" prog
has "-np 2 --hostfile $WORK/hosts --"
lacks --oversubscribe
dry --hostfile "$WORK/hosts" -n 3 prog
has "-np 3 --hostfile $WORK/hosts --oversubscribe"

# Environment: --env, --config and --nvme-path (relative paths made absolute).
printf '{}' >"$WORK/cfg.json"
mkdir "$WORK/nvme"
ABS=$(readlink -f "$WORK")
(cd "$WORK" && "$ZL" --dry-run -n 2 --bind none --env A=B --env EMPTY= \
    --config cfg.json --nvme-path nvme prog) >"$WORK/out" || fail "--env/--config refused"
eval "ARGV=($(cat "$WORK/out"))"
expect_argv "${HEAD[@]}" -np 2 --bind-to none "${TAIL[@]}" -x "ZRT_CONFIG=$ABS/cfg.json" \
    -x "ZRT_NVME_PATH=$ABS/nvme" -x A=B -x EMPTY= "$SELF" --rank-wrapper -- prog

# Arguments with spaces and quotes are quoted so the line can be pasted; `--`
# ends zero-launch's options, and options after PROGRAM belong to it.
dry -n 1 --bind none -- prog 'a b' "it's" '$HOME' '' --dry-run
has "prog 'a b' 'it'\\''s' '\$HOME' '' --dry-run"
expect_argv "${HEAD[@]}" -np 1 --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog 'a b' "it's" '$HOME' '' --dry-run
dry --allow-run-as-root -n 1 --bind none prog
has "-np 1 --allow-run-as-root --bind-to none"

# Errors name the option and the value, or the file and line.
refused "--bind: 'bogus'" --bind bogus prog
refused "--env: 'noequals' is not K=V" --env noequals prog
refused "--env: '1A' is not a valid variable name" --env 1A=b prog
refused "--config: '/nonexistent'" --config /nonexistent prog
refused "--nvme-path: '$WORK/cfg.json' is not a directory" --nvme-path "$WORK/cfg.json" prog
refused "--nproc: '0'" -n 0 prog
refused "--nproc: 'x'" --nproc x prog
refused "unknown option '--bogus'" --bogus prog
refused "no PROGRAM" -n 2
printf 'localhost slots=2\nlocalhost slots=x\n' >"$WORK/bad_hosts"
refused "$WORK/bad_hosts:2: 'slots=x'" --hostfile "$WORK/bad_hosts" prog
printf 'localhost\nlocalhost slots=2\n' >"$WORK/twice_hosts"
refused "$WORK/twice_hosts:2: host 'localhost' is already named on line 1" \
    --hostfile "$WORK/twice_hosts" prog
refused "--hostfile: '$WORK/missing'" --hostfile "$WORK/missing" prog

# Hostfile lines are read whole, whatever their length: a 1500-byte comment
# is one comment (it was split at 1023 bytes, its tail read as a host).
{ printf '# %s\n' "$(head -c 1500 /dev/zero | tr '\0' x)"; echo 'localhost slots=2'; } \
    >"$WORK/long_hosts"
dry --hostfile "$WORK/long_hosts" prog
has "-np 2 --hostfile $WORK/long_hosts"
# Open MPI's syntax: user@host, addresses, the max_slots spellings, '=' with
# blanks, comments after a host.
printf 'node1 slots=2 max_slots=4\nbob@node2 max-slots=3 # two\nnode3 count = 2\n10.0.0.1 cpu=1 username=bob\n::1\n' \
    >"$WORK/ompi_hosts"
dry --hostfile "$WORK/ompi_hosts" prog
has "-np 7 --hostfile $WORK/ompi_hosts"
# Anything else is refused, naming the file, the line and its text.
printf 'localhost slots=2\nnode1 slots=2 bogus\n' >"$WORK/junk_hosts"
refused "$WORK/junk_hosts:2: 'node1 slots=2 bogus' is not a hostfile line" \
    --hostfile "$WORK/junk_hosts" prog
grep -qF "'bogus' is not slots=N, max_slots=N or username=NAME" "$WORK/out" ||
    fail "no reason for the junk line: $(cat "$WORK/out")"
printf 'localhost\n$(reboot) !!\n' >"$WORK/junk_hosts"
refused "$WORK/junk_hosts:2: '\$(reboot) !!' is not a hostfile line" \
    --hostfile "$WORK/junk_hosts" prog
grep -qF "'\$(reboot)' is not a host name or address" "$WORK/out" ||
    fail "no reason for the junk host: $(cat "$WORK/out")"
{ echo localhost; printf '%s slots=4\n' "$(head -c 1100 /dev/zero | tr '\0' x)"; } \
    >"$WORK/long_hosts"
refused "$WORK/long_hosts:2: 'xxxx" --hostfile "$WORK/long_hosts" prog
grep -qF "... (1108 bytes)' is not a hostfile line" "$WORK/out" &&
    grep -qF "is not a host name or address (over 255 bytes)" "$WORK/out" ||
    fail "the long line is not refused whole: $(cat "$WORK/out")"
printf 'node1 slots=4 max_slots=2\n' >"$WORK/max_hosts"
refused "$WORK/max_hosts:1: 'node1 slots=4 max_slots=2' is not a hostfile line" \
    --hostfile "$WORK/max_hosts" prog
grep -qF "max_slots=2 is below slots=4" "$WORK/out" || fail "no max_slots reason"

# --nvme-path DIR that does not exist: --dry-run creates nothing and says the
# job would; a real run creates it and its parents (mode 0700) first.
dry -n 1 --bind none --nvme-path "$WORK/new/swap" prog
has "-x ZRT_NVME_PATH=$WORK/new/swap "
grep -qF "'$WORK/new/swap' does not exist; the job would create it (mode 0700)" \
    "$WORK/err" || fail "--dry-run does not say it would create the directory"
[ ! -e "$WORK/new" ] || fail "--dry-run created the --nvme-path directory"
"$ZL" --allow-run-as-root -n 1 --bind none --nvme-path "$WORK/new/swap" \
    /usr/bin/printenv ZRT_NVME_PATH >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "--nvme-path with a missing directory: the job did not run"; }
grep -qx "\[[0-9]*,0\]<stdout>: \?$ABS/new/swap" "$WORK/out" ||
    fail "the rank did not get ZRT_NVME_PATH=$ABS/new/swap: $(cat "$WORK/out")"
for d in "$WORK/new" "$WORK/new/swap"; do
    [ "$(stat -c %a "$d")" = 700 ] || fail "$d: mode $(stat -c %a "$d"), not 700"
done
refused "--nvme-path: '$WORK/cfg.json/x': Not a directory" --nvme-path "$WORK/cfg.json/x" prog

# --ranks-per-host N: N ranks on each host of the hostfile (ppr:N:node), with
# the binding computed for N ranks a host; -np is the hosts times N.
printf 'node1 slots=2\nnode2 slots=2 # two hosts\n' >"$WORK/two_hosts"
dry --hostfile "$WORK/two_hosts" --ranks-per-host 2 --bind none prog
expect_argv "${HEAD[@]}" -np 4 --hostfile "$WORK/two_hosts" --map-by ppr:2:node \
    --bind-to none "${TAIL[@]}" "$SELF" --rank-wrapper -- prog
dry --hostfile "$WORK/two_hosts" --ranks-per-host 2 -n 4 --bind core prog
has "-np 4 --hostfile $WORK/two_hosts --map-by ppr:2:node:PE=$(pe 2) --bind-to core --tag"
dry --hostfile "$WORK/two_hosts" --ranks-per-host 3 --bind numa prog
has "-np 6 --hostfile $WORK/two_hosts --oversubscribe --map-by ppr:3:node --bind-to numa:overload-allowed --tag"
printf 'node1 slots=4\nnode2 slots=1\n' >"$WORK/uneven_hosts" # node2 lacks a slot
dry --hostfile "$WORK/uneven_hosts" --ranks-per-host 2 --bind socket prog
has "-np 4 --hostfile $WORK/uneven_hosts --oversubscribe --map-by ppr:2:node --bind-to socket:overload-allowed"
dry --ranks-per-host 1 --bind none prog # no hostfile: this host
expect_argv "${HEAD[@]}" -np 1 --map-by ppr:1:node --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog
dry --ranks-per-host 1 -n 3 --bind none prog # a Slurm allocation: mpirun finds the hosts
has "-np 3 --map-by ppr:1:node --bind-to none"
refused "-n 3 disagrees with --ranks-per-host 2: '$WORK/two_hosts' names 2 hosts, so 4 ranks" \
    --hostfile "$WORK/two_hosts" --ranks-per-host 2 -n 3 prog
refused "-n 3 disagrees with --ranks-per-host 2: without --hostfile, -n must be the hosts times 2" \
    --ranks-per-host 2 -n 3 prog
refused "--ranks-per-host: '0' is not a positive integer" --ranks-per-host 0 prog

# --launch-agent PATH: mpirun's remote launch agent in place of ssh, as an
# absolute path (links kept); a name without '/' is looked up in PATH.
mkdir "$WORK/bin"
printf '#!/bin/sh\nexec ssh "$@"\n' >"$WORK/bin/my-agent"
chmod +x "$WORK/bin/my-agent"
(cd "$WORK" && "$ZL" --dry-run -n 1 --bind none --launch-agent ./bin/my-agent prog) \
    >"$WORK/out" || fail "--launch-agent ./bin/my-agent refused"
eval "ARGV=($(cat "$WORK/out"))"
expect_argv "${HEAD[@]}" -np 1 --mca plm_rsh_agent "$ABS/bin/my-agent" --bind-to none \
    "${TAIL[@]}" "$SELF" --rank-wrapper -- prog
PATH="$WORK/bin:$PATH" dry -n 1 --launch-agent my-agent prog
has "--mca plm_rsh_agent $WORK/bin/my-agent --"
refused "--launch-agent: '$WORK/missing': No such file or directory" \
    --launch-agent "$WORK/missing" prog
refused "--launch-agent: '$ABS/cfg.json' is not an executable file" \
    --launch-agent "$ABS/cfg.json" prog
refused "--launch-agent: '$WORK/bin' is not an executable file" --launch-agent "$WORK/bin" prog
refused "--launch-agent: no executable 'zrt-no-such-agent' in PATH" \
    --launch-agent zrt-no-such-agent prog

# --net IF|CIDR[,...]: the TCP btl (under the ob1 pml: no UCX or libfabric
# path around it) and mpirun's daemons use that network, ranks of one host
# shared memory; an item nothing here matches is said, and
# a run (not --dry-run) where nothing matches is refused before mpirun starts.
dry -n 2 --bind none --net lo,127.0.0.0/8 prog
expect_argv "${HEAD[@]}" -np 2 --mca pml ob1 --mca btl self,vader,tcp --mca btl_tcp_if_include \
    lo,127.0.0.0/8 --mca oob_tcp_if_include lo,127.0.0.0/8 --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog
dry -n 1 --net lo,zrtnone0 prog
grep -qF "no interface of this host ($(hostname)) is named 'zrtnone0'" "$WORK/err" ||
    fail "--net: no note on the absent interface: $(cat "$WORK/err")"
dry -n 1 --net zrtnone0 prog
grep -qF "a run here would be refused" "$WORK/err" || fail "--net: no note: $(cat "$WORK/err")"
refused "--net 'zrtnone0': no interface of this host ($(hostname)) matches it" \
    -n 1 --net zrtnone0 prog
refused "--net: '10.1.2.3' is an address; give its network, a.b.c.d/N (for example 10.1.2.3/24)" \
    --net 10.1.2.3 prog
refused "--net: '10.0.0.0/33' is not an IPv4 network a.b.c.d/N" --net lo,10.0.0.0/33 prog
refused "--net: 'bad name' is not an interface name" --net 'bad name' prog
refused "--net: 'lo,,eth0' has an empty item" --net lo,,eth0 prog

# --mca KEY VALUE (repeatable), after the options' own; one an option sets
# replaces that value in its place, and says so.
dry -n 1 --bind none --mca mpi_yield_when_idle 1 --launch-agent "$WORK/bin/my-agent" \
    --mca btl_tcp_if_exclude 'lo,docker0' prog
expect_argv "${HEAD[@]}" -np 1 --mca plm_rsh_agent "$WORK/bin/my-agent" \
    --mca mpi_yield_when_idle 1 --mca btl_tcp_if_exclude lo,docker0 --bind-to none \
    "${TAIL[@]}" "$SELF" --rank-wrapper -- prog
dry -n 1 --net lo --mca btl self,tcp prog
has "--mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --"
grep -qF -- "--mca btl self,tcp replaces the value --net gives it (self,vader,tcp)" \
    "$WORK/err" || fail "--mca btl: no note: $(cat "$WORK/err")"
refused "--mca btl needs a VALUE" --mca btl
refused "--mca btl needs a VALUE" --mca btl -- prog
refused "--mca btl is given twice ('tcp' and 'self'); give it once" --mca btl tcp --mca btl self prog
refused "--mca: 'btl-x' is not an MCA parameter name" --mca btl-x 1 prog

# --dry-run lists the OMPI_MCA_* variables mpirun would read as well.
OMPI_MCA_zrt_test_a=7 OMPI_MCA_zrt_test_b=8 dry -n 1 --mca zrt_test_b 9 prog
grep -qxF "zero-launch: the environment sets OMPI_MCA_zrt_test_a=7: mpirun reads it too (it is not in the command)" \
    "$WORK/err" && grep -qxF "zero-launch: the environment sets OMPI_MCA_zrt_test_b=8: mpirun reads it too, but the command's --mca of that name wins" \
    "$WORK/err" || fail "--dry-run: OMPI_MCA_* not listed: $(cat "$WORK/err")"

# --topology, --version, --help.
"$ZL" --topology >"$WORK/out" || fail "--topology exited non-zero"
has "cores:"
grep -q '^binding: *\(none\|core\|numa\|socket\)' "$WORK/out" || fail "no binding line"
"$ZL" --version >"$WORK/out" || fail "--version exited non-zero"
grep -q '^zero-launch [0-9]' "$WORK/out" || fail "--version: $(cat "$WORK/out")"
"$ZL" --help >"$WORK/out" || fail "--help exited non-zero"
has "--allow-run-as-root"
for opt in --ranks-per-host --launch-agent --net --mca; do has "$opt"; done

# A real run: each rank's program gets the arguments unchanged (no shell), and
# every line carries Open MPI's tag once.
"$ZL" --allow-run-as-root -n 2 --env 'SPACED=x y' /usr/bin/printf \
    '%s|%s|%s|\n' 'a b' "it's" '$HOME' >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "real run failed"; }
for r in 0 1; do
    n=$(grep -cx "\[[0-9]*,$r\]<stdout>: \?a b|it's|\$HOME|" "$WORK/out" || true)
    ((n == 1)) || { cat "$WORK/out"; fail "rank $r: $n lines 'a b|it's|\$HOME|'"; }
done
"$ZL" --allow-run-as-root -n 2 --env 'SPACED=x y' /usr/bin/printenv SPACED \
    ZRT_LOG_RANK_PREFIX >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "printenv failed"; }
for r in 0 1; do
    grep -qx "\[[0-9]*,$r\]<stdout>: \?x y" "$WORK/out" || fail "rank $r: no SPACED=x y"
    grep -qx "\[[0-9]*,$r\]<stdout>: \?0" "$WORK/out" || fail "rank $r: no ZRT_LOG_RANK_PREFIX=0"
done
echo "PASS"
