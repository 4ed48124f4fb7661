#!/bin/sh
# make test-slurm: the job-array scripts of tools/slurm under a real Slurm, a one-node cluster
# started here (munged, slurmctld and slurmd on this machine, private ports, state in a temporary
# folder). A small survey is simulated and scored as arrays of 4 shards, and 4 fields searched
# as 2; the merged outputs must
# equal one process's byte for byte, also when one task is killed part-way and requeued, and a
# resubmitted array must redo nothing. Where Slurm is not installed or cannot start, SKIP with
# the reason. Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
. tests/check.sh
lens=${LENS:-build/lens}
case $lens in /*) ;; *) lens=$root/$lens ;; esac
skip() { echo "SKIP: test-slurm: $*"; echo "0 passed, 0 failed"; exit 0; }
for p in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$p" > /dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || skip "$p not found (Debian: apt-get install slurm-wlm munge)"
done
PATH=$PATH:/usr/sbin
[ -x "$lens" ] || { echo "FAIL: no $lens (make first)"; echo "0 passed, 1 failed"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/lens-slurm.XXXXXX")
chmod 755 "$W"
user=$(id -un)
host=$(hostname -s 2>/dev/null || hostname)
port=$((17000 + $$ % 2000 * 2))
export SLURM_CONF="$W/slurm.conf"
stop() {
  for f in slurmd slurmctld munged; do [ -f "$W/$f.pid" ] && kill "$(cat "$W/$f.pid")" 2> /dev/null; done
  sleep 1
  rm -rf "$W"
}
trap stop EXIT INT TERM
mkdir -p "$W/state" "$W/spool" "$W/log" "$W/munge"
# munged with its own key, socket and files: nothing of the machine's own is touched
dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 2> /dev/null
chmod 700 "$W/munge"; chmod 400 "$W/munge/munge.key"
munged --key-file="$W/munge/munge.key" --socket="$W/munge/munge.sock" --pid-file="$W/munged.pid" \
  --log-file="$W/log/munged.log" --seed-file="$W/munge/munge.seed" --force 2> "$W/log/munged.err" ||
  skip "munged did not start: $(tail -n 2 "$W/log/munged.err" "$W/log/munged.log" 2> /dev/null | tr '\n' ' ')"
cat > "$SLURM_CONF" <<CONF
ClusterName=lenstest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$W/munge/munge.sock
CredType=cred/munge
SlurmUser=$user
SlurmdUser=$user
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MaxArraySize=1000
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF" 2> "$W/log/slurmctld.err" || skip "slurmctld did not start: $(tail -n 3 "$W/log/slurmctld.err" "$W/log/slurmctld.log" | tr '\n' ' ')"
slurmd -f "$SLURM_CONF" 2> "$W/log/slurmd.err" || skip "slurmd did not start: $(tail -n 3 "$W/log/slurmd.err" "$W/log/slurmd.log" | tr '\n' ' ')"
up=0
for _ in $(seq 60); do
  sinfo -h -o %T 2> /dev/null | grep -q idle && { up=1; break; }
  sleep 0.5
done
[ $up = 1 ] || skip "the one-node cluster did not come up in 30 s: $(tail -n 3 "$W/log/slurmd.log" "$W/log/slurmctld.log" | tr '\n' ' ')"
echo "-- a one-node Slurm cluster ($(sinfo -V)) on $host, port $port"

# waits until job $1 (and its array tasks) left the queue; 0 unless it took more than $2 seconds
wait_job() {
  for _ in $(seq $(($2 * 2))); do
    [ -z "$(squeue -h -j "$1" 2> /dev/null)" ] && return 0
    sleep 0.5
  done
  echo "   job $1 still queued after $2 s:"; squeue -j "$1"
  return 1
}
# the merge job's id out of submit.sh's line
merge_id() { sed -n 's/.*merge job \([0-9]*\).*/\1/p' "$1"; }
array_id() { sed -n 's/^array job \([0-9]*\).*/\1/p' "$1"; }

# the survey as one process makes and scores it
S=$W/single
"$lens" sim --preset euclid-lensfinding --n 40 --seed 21 --threads 1 --out "$S/sim" 2> /dev/null
"$lens" predict --model weights/ou66-sim.safetensors --threads 1 "$S/sim/images.npy" --out "$S/scores.csv" 2> /dev/null
check "one process simulated and scored 40 objects" [ "$(wc -l < "$S/scores.csv")" -eq 41 ]

echo "-- lens sim as an array of 4 shards, merged"
sh tools/slurm/submit.sh --lens "$lens" --shards 4 --out "$W/sim" -- sim --preset euclid-lensfinding --n 40 --seed 21 > "$W/sim.txt" 2>&1
check "submit.sh submitted the sim array and its merge ($(cat "$W/sim.txt"))" [ -n "$(merge_id "$W/sim.txt")" ]
wait_job "$(merge_id "$W/sim.txt")" 300
check "4 shard folders, each with its manifest" [ "$(ls "$W"/sim/part-0000?/shard.json 2> /dev/null | wc -l)" -eq 4 ]
check "merged images.npy = one process's" cmp -s "$W/sim/all/images.npy" "$S/sim/images.npy"
check "merged labels.csv = one process's" cmp -s "$W/sim/all/labels.csv" "$S/sim/labels.csv"

echo "-- lens predict as an array of 4 shards, merged"
sh tools/slurm/submit.sh --lens "$lens" --shards 4 --out "$W/pred" -- predict --model "$root/weights/ou66-sim.safetensors" "$S/sim/images.npy" > "$W/pred.txt" 2>&1
check "submit.sh submitted the predict array and its merge ($(cat "$W/pred.txt"))" [ -n "$(merge_id "$W/pred.txt")" ]
wait_job "$(merge_id "$W/pred.txt")" 300
# the input column names the same file in both runs
check "merged scores = one process's, byte for byte" cmp -s "$W/pred/scores.csv" "$S/scores.csv"

echo "-- lens find over 4 fields as an array of 2 shards, merged"
mkdir -p "$S/fields"
for i in 1 2 3 4; do
  "$lens" sim --preset euclid-lensfinding --field 200 --lenses 1 --others 5 --seed $((30 + i)) --threads 1 --out "$S/f$i" 2> /dev/null
  cp "$S/f$i/field.fits" "$S/fields/f$i.fits"
done
"$lens" find --model weights/ou66-sim.safetensors --threads 1 --out "$S/find" "$S"/fields/f1.fits "$S"/fields/f2.fits "$S"/fields/f3.fits "$S"/fields/f4.fits 2> /dev/null
sh tools/slurm/submit.sh --lens "$lens" --shards 2 --out "$W/find" -- find --model "$root/weights/ou66-sim.safetensors" \
  "$S"/fields/f1.fits "$S"/fields/f2.fits "$S"/fields/f3.fits "$S"/fields/f4.fits > "$W/find.txt" 2>&1
check "submit.sh submitted the find array and its merge ($(cat "$W/find.txt"))" [ -n "$(merge_id "$W/find.txt")" ]
wait_job "$(merge_id "$W/find.txt")" 300
check "merged detections = one process's" cmp -s "$W/find/all/detections.csv" "$S/find/detections.csv"

echo "-- the same array again: every task finds its shard done"
rm -f "$W/pred/scores.csv"
sh tools/slurm/submit.sh --lens "$lens" --shards 4 --out "$W/pred" -- predict --model "$root/weights/ou66-sim.safetensors" "$S/sim/images.npy" > "$W/pred2.txt" 2>&1
wait_job "$(merge_id "$W/pred2.txt")" 300
a2=$(array_id "$W/pred2.txt")
check "all 4 tasks of the resubmitted array skipped their shard" [ "$(cat "$W"/pred/logs/"${a2}"_*.out 2> /dev/null | grep -c 'already done')" -eq 4 ]
check "and the merge gives the same scores" cmp -s "$W/pred/scores.csv" "$S/scores.csv"

echo "-- one task killed part-way and requeued"
# A lens that, as task 2's first attempt, starts the real one, kills it with SIGKILL once it has
# begun writing, and has Slurm requeue the task; every other run is the real lens.
cat > "$W/lens-killed" <<WRAP
#!/bin/sh
if [ "\${SLURM_ARRAY_TASK_ID:-}" = 2 ] && [ "\${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  "$lens" "\$@" &
  pid=\$!
  for _ in \$(seq 200); do ls "$W"/kill/part-00002* > /dev/null 2>&1 && break; sleep 0.01; done
  kill -9 \$pid
  echo "killed lens (pid \$pid) part-way" >&2
  scontrol requeue "\$SLURM_JOB_ID"
  sleep 60
fi
exec "$lens" "\$@"
WRAP
chmod +x "$W/lens-killed"
sh tools/slurm/submit.sh --lens "$W/lens-killed" --shards 4 --out "$W/kill" -- sim --preset euclid-lensfinding --n 40 --seed 21 > "$W/kill.txt" 2>&1
wait_job "$(merge_id "$W/kill.txt")" 600
a3=$(array_id "$W/kill.txt")
check "task 2 was killed on its first attempt" grep -q "killed lens" "$W"/kill/logs/"${a3}"_2.out
check "and ran again after its requeue" grep -q "attempt 2" "$W"/kill/logs/"${a3}"_2.out
check "merged images.npy after the requeue = one process's" cmp -s "$W/kill/all/images.npy" "$S/sim/images.npy"
check "merged labels.csv after the requeue = one process's" cmp -s "$W/kill/all/labels.csv" "$S/sim/labels.csv"
check_summary
