#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-launch --max-restarts on one host (launch_victim --fail-unless-restarted,
# whose rank 1 exits 1 while ZRT_RESTART is below K and which prints what
# each rank saw of ZRT_RESTART and ZRT_ELASTIC_WORLD):
#   (a) a job that fails on attempt 1 and succeeds on attempt 2 makes
#       zero-launch exit 0 after one restart line; the ranks saw ZRT_RESTART
#       0, then 1, and ZRT_ELASTIC_WORLD the first attempt's rank count;
#   (b) a job that always fails ends non-zero after exactly 2 restarts with
#       the giving-up sentence;
#   (c) without --max-restarts neither variable reaches the ranks, even when
#       zero-launch's own environment holds stale ones;
#   (d) bad values and combinations exit 2 naming the option;
#   (e) --dry-run shows the variables and says what restarts change;
#   (f) a lost host is dropped: with the monitor on this host (--launch-agent
#       /bin/true --net lo) and a fake mpirun that starts only rank 0's
#       wrapper, rank 1 never connects, is placed by --ranks-per-host 1 on
#       the hostfile's second host, which is dropped; the second attempt gets
#       a temporary hostfile of the first host's line as written, -np 1, and
#       succeeds; the temporary file is gone afterwards. With --min-hosts 2 the
#       same job gives up instead.
# Killing a real host is checked by hand on the namespace cluster
# (docs/launch.md).
#   launch_restart.sh ZERO_LAUNCH VICTIM   (VICTIM: tests/tools/launch_victim.c)
source "$(dirname "$0")/common.sh"
ZL=$1
VICTIM=$2
ROOT=()
[ "$(id -u)" != 0 ] || ROOT=(--allow-run-as-root)

# launch ARGS... : zero-launch ARGS under timeout 60, output in $WORK/out;
# sets STATUS.
launch() {
    STATUS=0
    timeout 60 "$ZL" "${ROOT[@]}" "$@" >"$WORK/out" 2>&1 || STATUS=$?
    ((STATUS != 124)) || { cat "$WORK/out"; fail "$*: hung until timeout 60"; }
}
says() { grep -Eq -- "$1" "$WORK/out" || { cat "$WORK/out"; fail "no line matching '$1'"; }; }
count() { grep -Ec -- "$1" "$WORK/out" || true; }
# saw RANK RESTART WORLD : rank RANK printed that it saw those values.
saw() { says "<stdout>: ?rank $1 restart $2 elastic_world $3\$"; }
# refused PATTERN ARGS... : zero-launch ARGS exits 2 with a line matching
# PATTERN (grep -E), starting nothing.
refused() {
    local pattern=$1 status=0
    shift
    "$ZL" "$@" >"$WORK/out" 2>&1 || status=$?
    ((status == 2)) || { cat "$WORK/out"; fail "$*: exit status $status, not 2"; }
    says "^zero-launch: .*$pattern"
}

# (a) fails once, then succeeds
launch -n 2 --max-restarts 2 -- "$VICTIM" --fail-unless-restarted 1
((STATUS == 0)) || { cat "$WORK/out"; fail "(a): exit status $STATUS, not 0"; }
(($(count '^zero-launch: restart ') == 1)) || { cat "$WORK/out"; fail "(a): not one restart line"; }
says '^zero-launch: restart 1 of 2: no host was lost \(exit status 1\).*ZRT_ELASTIC_WORLD=2'
says '^zero-launch: attempt 1 started at [0-9]+\.[0-9]{3} \(unix seconds\)$'
says '^zero-launch: attempt 2 started at [0-9]+\.[0-9]{3} \(unix seconds\), [0-9.]+ s after the failure$'
for r in 0 1; do
    saw $r 0 2
    saw $r 1 2
done
says '<stdout>: ?launch_victim: 20 steps'
echo "(a) failed once, restarted, exit status 0"

# (b) always fails: 2 restarts, then gives up
launch -n 2 --max-restarts 2 -- "$VICTIM" --fail-unless-restarted 99
((STATUS == 1)) || { cat "$WORK/out"; fail "(b): exit status $STATUS, not 1"; }
(($(count '^zero-launch: restart ') == 2)) || { cat "$WORK/out"; fail "(b): not two restart lines"; }
(($(count '^zero-launch: attempt [0-9]+ started') == 3)) || { cat "$WORK/out"; fail "(b): not 3 attempts"; }
saw 1 2 2
says '^zero-launch: giving up after 2 restarts: the job failed again \(exit status 1\)$'
echo "(b) failed 3 times, gave up after 2 restarts, exit status $STATUS"

# (c) no restarts: no variables, stale ones included; the output is as before
ZRT_RESTART=5 ZRT_ELASTIC_WORLD=9 launch -n 2 -- "$VICTIM" --fail-unless-restarted 0
((STATUS == 0)) || { cat "$WORK/out"; fail "(c): exit status $STATUS"; }
saw 0 unset unset
saw 1 unset unset
! grep -q '^zero-launch:' "$WORK/out" || { cat "$WORK/out"; fail "(c): zero-launch said something"; }
ZRT_RESTART=5 launch -n 2 -- "$VICTIM" --fail-unless-restarted 1
((STATUS == 1)) || { cat "$WORK/out"; fail "(c): failing job: exit status $STATUS, not 1"; }
says '^zero-launch: the job failed \(mpirun exit status 1\)'
! grep -q '^zero-launch: restart' "$WORK/out" || { cat "$WORK/out"; fail "(c): restarted"; }
echo "(c) without --max-restarts: no variables, no restart"

# (d) bad values
printf 'localhost slots=2\n' >"$WORK/hosts"
refused "--max-restarts: '-1' is not an integer of 0 or more" --max-restarts -1 -- true
refused "--max-restarts: 'x' is not an integer of 0 or more" --max-restarts x -- true
refused "--min-hosts: '0' is not a positive integer" --max-restarts 1 --min-hosts 0 -- true
refused "--min-hosts 2: .*give --max-restarts" --min-hosts 2 -- true
refused "--min-hosts 2: .*give --max-restarts" --max-restarts 0 --min-hosts 2 -- true
refused "-n/--nproc 4 with --max-restarts 1 and --hostfile: -n fixes the world size" \
    -n 4 --max-restarts 1 --hostfile "$WORK/hosts" -- true
refused "--min-hosts 2: the job starts on 1 host" --max-restarts 1 --min-hosts 2 \
    --hostfile "$WORK/hosts" -- true
echo "(d) bad values refused with exit status 2"

# (e) --dry-run
"$ZL" --dry-run --max-restarts 3 --ranks-per-host 2 --hostfile "$WORK/hosts" -- prog \
    >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "(e): --dry-run failed"; }
says '^mpirun -np 2 .*-x ZRT_RESTART=0 -x ZRT_ELASTIC_WORLD=2 .* prog$'
says '^zero-launch: with --max-restarts 3, .*ZRT_RESTART=<attempt.*ZRT_ELASTIC_WORLD=2 .*hostfile rebuilt'
"$ZL" --dry-run -n 2 -- prog >"$WORK/out" 2>&1
! grep -q 'ZRT_RESTART\|ZRT_ELASTIC_WORLD' "$WORK/out" || { cat "$WORK/out"; fail "(e): variables without --max-restarts"; }
echo "(e) --dry-run shows the variables"

# (f) a host whose rank never connected is dropped
mkdir "$WORK/fake"
cat >"$WORK/fake/mpirun" <<'SH'
#!/usr/bin/env bash
# fake mpirun: exports its -x K=V, keeps its argv and hostfile, and runs only
# rank 0's wrapper (the words from the one before --rank-wrapper on).
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
    -x) [[ ${args[i + 1]} != *=* ]] || export "${args[i + 1]}" ;;
    --rank-wrapper) first=$((i - 1)) ;;
    esac
done
echo "$*" >"$FAKE_DIR/argv.$ZRT_RESTART"
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[i]}" != --hostfile ] || cp "${args[i + 1]}" "$FAKE_DIR/hosts.$ZRT_RESTART"
done
OMPI_COMM_WORLD_RANK=0 exec "${args[@]:first}"
SH
chmod +x "$WORK/fake/mpirun"
printf 'localhost slots=1 # first\n\n# a comment\n127.0.0.2 slots=1\n' >"$WORK/two"
# shellcheck disable=SC2016 # expanded by that sh
PROG=(sh -c '[ "$ZRT_RESTART" = 1 ] || exec sleep 20')
fake_job() {
    FAKE_DIR=$WORK/fake PATH="$WORK/fake:$PATH" launch --launch-agent /bin/true --net lo \
        --start-timeout 1 --hostfile "$WORK/two" --ranks-per-host 1 --max-restarts 1 "$@" \
        -- "${PROG[@]}"
}
fake_job
((STATUS == 0)) || { cat "$WORK/out"; fail "(f): exit status $STATUS, not 0"; }
says '^zero-launch: rank 1 did not connect to zero-launch'
says '^zero-launch: restart 1 of 1: dropped host 127\.0\.0\.2 \(its rank 1 never connected\); 1 host, 1 rank \(was 2\);'
grep -q -- '-np 2 --hostfile '"$WORK/two"' ' "$WORK/fake/argv.0" || fail "(f): attempt 1: $(cat "$WORK/fake/argv.0")"
tmp=$(grep -Eo -- '--hostfile [^ ]+' "$WORK/fake/argv.1" | cut -d' ' -f2)
grep -q -- "-np 1 --hostfile $tmp .*-x ZRT_RESTART=1 -x ZRT_ELASTIC_WORLD=2 " "$WORK/fake/argv.1" ||
    fail "(f): attempt 2: $(cat "$WORK/fake/argv.1")"
[ "$(cat "$WORK/fake/hosts.1")" = "localhost slots=1 # first" ] ||
    fail "(f): the hostfile of the hosts left holds: $(cat "$WORK/fake/hosts.1")"
[ ! -e "$tmp" ] || fail "(f): $tmp is left after zero-launch ended"
rm -f "$WORK"/fake/argv.* "$WORK"/fake/hosts.*
fake_job --min-hosts 2
((STATUS != 0)) || { cat "$WORK/out"; fail "(f) --min-hosts 2: exit status 0"; }
says '^zero-launch: giving up: lost host 127\.0\.0\.2 \(its rank 1 never connected\); 1 host left \(localhost\), fewer than --min-hosts 2$'
[ ! -e "$WORK/fake/argv.1" ] || fail "(f) --min-hosts 2: a second attempt ran"
echo "(f) the host of a rank that never connected dropped; --min-hosts 2 gives up"
echo "PASS"
