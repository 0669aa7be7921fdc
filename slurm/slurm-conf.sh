# The slurm.conf text the two test clusters share, sourced by slurm-local.sh (one node on
# localhost) and netns-cluster.sh (nodes in network namespaces); each writes its own header
# comment and its NodeName and PartitionName lines around it.
#
#   slurm_conf_common NAME HOST ADDR PORT BASE MPI PER_NODE SLURMD_TIMEOUT
#
# PER_NODE: "" for one slurmd, or "%n" when several slurmd's share a machine (their spool
# folders, pid and log files then carry the node name). SLURMD_TIMEOUT: seconds after which a
# node that stopped answering (crashed, link down) is declared DOWN.
slurm_conf_common() {
  local name=$1 host=$2 addr=$3 port=$4 base=$5 mpi=$6 per=$7 slurmd_timeout=$8
  local spool=$base/spool${per:+/$per} file=slurmd${per:+.$per}
  cat <<CONF
ClusterName=$name
SlurmctldHost=$host($addr)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$base/munge/munge.socket
StateSaveLocation=$base/state
SlurmdSpoolDir=$spool
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/$file.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/$file.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups anywhere
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=$mpi
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# advertise more CPUs than the machine has; without config_overrides the node
# goes to state INVAL ("Low socket*core*thread count, Low CPUs")
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
KillWait=5
# "sbatch --wait" polls every 2 s only while MinJobAge/2 <= 2; with the default
# MinJobAge=300 it backs off to 8 s and 32 s. 22.05 rejects values below 2.
# Finished jobs stay visible to squeue/scontrol for about MinJobAge seconds.
MinJobAge=5
# Job ids start here (SLURM_FIRST_JOB_ID, default 1). Several clusters on one machine need
# disjoint ids: Slurm's PMIx plugin names its per-step folder /tmp/spmix_appdir_<uid>_<job>.<step>,
# and two clusters' job 3 would share it (srun: "task 0 launch failed").
FirstJobId=${SLURM_FIRST_JOB_ID:-1}
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=$slurmd_timeout
CONF
}
