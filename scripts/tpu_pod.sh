#!/bin/bash
# Train on every host of a Cloud TPU VM pod slice: the same command on all workers.
#
#   bash scripts/tpu_pod.sh TPU_NAME ZONE configs/vae_beta.py /mnt/shared/runs/x [--config.k=v ...]
#
# Expects: a TPU VM slice created with a JAX runtime image, this repository at ~/ae_jax on
# every worker with `pip install -e . 'jax[tpu]'` done, and a workdir on a filesystem every
# host mounts (NFS / Filestore, or a bucket through gcsfuse): the workdir is a POSIX folder.
# jax.distributed.initialize() finds the pod's hosts by itself on TPU VMs. A maintenance
# event or a preemption sends SIGTERM: the job checkpoints at the next chunk boundary and
# exits; rerun this command to resume.
#
# The workers run the command through their login shell (bash), so every argument is quoted
# for it here (printf %q): an override such as --config.sweep.beta='(1.,4.)' or a workdir
# with a space reaches Python exactly as typed on this machine.
set -euo pipefail
USAGE='usage: tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.k=v ...]'
TPU=${1:?$USAGE}
ZONE=${2:?$USAGE}
CONFIG=${3:?$USAGE}
WORKDIR=${4:?$USAGE}
shift 4
REMOTE='cd ~/ae_jax && python -m ae_jax.main --distributed'
for arg in --config "$CONFIG" --workdir "$WORKDIR" "$@"; do
  REMOTE+=" $(printf '%q' "$arg")"
done
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "$REMOTE"
