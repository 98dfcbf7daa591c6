"""The workdir: the one module that knows its file names, and its only writer.

  runs/x/
    config.json     the config the weights were trained with
    members.json    the models trained (one per sweep point; 'run' when not sweeping)
    model.json      what loading a model needs without its data (image shape, classes, ...)
    metrics.jsonl   one JSON object per epoch and split
    summary.json    final metrics per member, training speed
    eval.json       the last --mode=evaluate result
    sweep.csv, sweep.md, report.md, report.html
    checkpoints/, checkpoints_best/   Orbax
    figures/*.png   latent/<tool>/    programs/<name>/ (a workdir per program of a sweep)
    tensorboard/<member>/   TensorBoard event files (tracking.py), one run per member, at
                    the top workdir for every program of a sweep
    .lock           held (flock) by the process training here; names it

Every write goes through a `Workdir` (or `Outputs`), and only a writer writes: in a
multi-process job that is process 0 (`jax.process_index() == 0`), decided here and nowhere
else. Every file is written by one function, `write_bytes`: into a temporary name in the
same folder, synced, then renamed over the old version, so a full disk or a kill leaves
the previous version intact and no temporary behind; a failure is one `WriteError` line
naming the file and the OS reason. Readers turn damaged files into one-line
`WorkdirError`s that name the file, and check the records against their declared shapes
(`RECORDS`): the key at fault and the way to fix it. A training run holds its workdir
(`Workdir.running()`), so a second run started in the same folder stops with an error
instead of writing checkpoints and metrics beside the first; a latent tool holds its
output folder the same way, and replaces it as a whole when it finishes (`Outputs`).

Nothing ae_jax writes inside a workdir or an --out may be a symbolic link (the folder
itself may be one): every write refuses a link below the folder the user named, and a run
scans its workdir for them first (`links`). A command replaces only its own previous
output: `owners` says whose a folder is, and each command refuses the others', naming them.

Modules: `records` (file names, record shapes), `links` (no writes through links), `files`
(the one write), `lock`, `owners` (whose a folder is), `outputs` (a tool's folder),
`folder` (`Workdir`, `MetricsLog`).
"""
from ae_jax.workdir.files import (append_text, config_to_dict, figure_bytes, npy_bytes,
                                  npz_bytes, save_figure, write_bytes, write_json, write_lines,
                                  write_text_file)
from ae_jax.workdir.folder import MetricsLog, Workdir
from ae_jax.workdir.links import link_error, refuse_links
from ae_jax.workdir.lock import take_lock
from ae_jax.workdir.outputs import Outputs
from ae_jax.workdir.owners import Owner, owner, refuse_reading, refuse_unless
from ae_jax.workdir.records import (BEST, CHECKPOINTS, CONFIG, CRASH_LOG, DAMAGED, EVAL,
                                    FIGURES, KINDS, LATENT, LOCK, MEMBERS, METRICS, MODEL,
                                    MODELS, OUTPUTS_MARK, PRIORS, PROGRAMS, RECORDS, STATS, STUDY,
                                    SUMMARY,
                                    TENSORBOARD, check_record)

__all__ = [
    'append_text', 'config_to_dict', 'figure_bytes', 'npy_bytes', 'npz_bytes', 'save_figure',
    'write_bytes', 'write_json', 'write_lines', 'write_text_file', 'MetricsLog', 'Workdir',
    'link_error', 'refuse_links', 'take_lock', 'Outputs', 'Owner', 'owner', 'refuse_reading',
    'refuse_unless', 'BEST', 'CHECKPOINTS', 'CONFIG', 'CRASH_LOG', 'DAMAGED', 'EVAL', 'FIGURES',
    'KINDS', 'LATENT', 'LOCK', 'MEMBERS', 'METRICS', 'MODEL', 'MODELS', 'OUTPUTS_MARK',
    'PRIORS', 'PROGRAMS', 'RECORDS', 'STATS', 'STUDY', 'SUMMARY', 'TENSORBOARD', 'check_record',
]
