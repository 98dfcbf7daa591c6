#!/bin/bash
# Train on every host of a Cloud TPU VM pod slice: the same command on all workers.
#
#   bash scripts/tpu_pod.sh TPU_NAME ZONE configs/vae_beta.py /mnt/shared/runs/x [--config.k=v ...]
#
# Expects: a TPU VM slice created with a JAX runtime image, this repository at ~/ae_jax on
# every worker with `pip install -e . 'jax[tpu]'` done, and a workdir on a filesystem every
# host mounts (NFS / Filestore, or a bucket through gcsfuse): the workdir is a POSIX folder. jax.distributed.initialize()
# finds the pod's hosts by itself on TPU VMs. A maintenance event or a preemption sends
# SIGTERM: the job checkpoints at the next chunk boundary and exits; rerun this command to
# resume.
set -euo pipefail
TPU=${1:?usage: tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.k=v ...]}
ZONE=${2:?zone}
CONFIG=${3:?config}
WORKDIR=${4:?workdir}
shift 4
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command \
  "cd ~/ae_jax && python -m ae_jax.main --distributed --config $CONFIG --workdir $WORKDIR $*"
