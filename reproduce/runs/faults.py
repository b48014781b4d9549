"""The faults and bad inputs the project is tested against, and what the user gets for each.

One list, read twice: tests/test_faults.py runs one test per case (a test checks that no case
is left without one, and no test without a case), and the book's methods page prints it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultCase:
    id: str
    kind: str
    fault: str
    outcome: str


KINDS = ("interruption", "concurrency", "bad input", "staleness", "safety")

CASES: tuple[FaultCase, ...] = (
    FaultCase("kill-mid-epoch", "interruption", "kill -9 at a random moment while training",
              "the rerun resumes from the last whole-epoch checkpoint; its record equals an uninterrupted "
              "run's in every metric and in the weights"),
    FaultCase("kill-within-epoch", "interruption", "kill -9 inside an epoch of a run that checkpoints every few "
              "steps (checkpoint_every_steps)",
              "the rerun resumes inside the epoch, at the last step checkpoint, with every random stream and partial "
              "sum where it was; its record equals an uninterrupted run's in every metric and in the weights"),
    FaultCase("kill-checkpoint-write", "interruption", "kill -9 halfway through writing a checkpoint",
              "the previous checkpoint is untouched (writes go to a temporary file, then rename); "
              "the rerun resumes from it; same final record"),
    FaultCase("kill-record-write", "interruption", "kill -9 halfway through writing the final record",
              "the record on disk is the earlier 'running' one, never taken for complete; the rerun "
              "finishes the run; same final record"),
    FaultCase("grid-worker-killed", "interruption", "kill -9 of a grid worker in the middle of a run",
              "the grid starts a new pool; another worker resumes the run from its last whole-epoch checkpoint; "
              "its final weights are bit-identical to an uninterrupted run's; the grid exits 0"),
    FaultCase("kill-before-analysis", "interruption", "kill -9 between a run's complete record and the measures of "
              "its final weights (a claim's 10-crop error, neighbours)", "the next grid or notebook reuses the run and "
              "measures it from its checkpoint, then deletes the checkpoint; where the checkpoint is gone (records "
              "brought home from a lent GPU), the run is reported 'analysis missing' and the grid does not fail"),
    FaultCase("grid-past-deadline", "interruption", "a grid's time budget runs out, on a device with no earlier record "
              "(a lent GPU)", "no run starts after the deadline, nor when its first-run estimate (FLOPs at a "
              "conservative share of the device's rate) cannot finish in time; running runs stop at an epoch end; "
              "exit 75; scripts/gpu_session.sh packs what finished whatever happened"),
    FaultCase("submitit-job-requeued", "interruption", "a submitit job preempted (USR2, as Slurm sends before a "
              "preemption or the time limit)", "submitit checkpoints and requeues the job; it resumes the run from "
              "its last whole-epoch checkpoint, with the weights of an uninterrupted run"),
    FaultCase("slurm-job-requeued", "interruption", "a running Slurm job requeued (`scontrol requeue`, as an "
              "administrator or a failed node does)", "Slurm starts the job again; it resumes the run from its last "
              "whole-epoch checkpoint, with the weights of an uninterrupted run; the grid exits 0"),
    FaultCase("slurm-time-limit", "interruption", "a Slurm job at its time limit: Slurm's USR2 90 s before it (sent "
              "here with `scancel --signal=USR2`)", "submitit checkpoints and requeues the job (a timeout, of "
              "1000 allowed); it resumes from the last whole-epoch checkpoint to the weights of an uninterrupted run"),
    FaultCase("slurm-rank-killed", "interruption", "kill -9 of one task (rank) of a 2-task Slurm job "
              "(`--gpus-per-run 2`) mid-epoch", "the other rank stops; the grid reports the run FAILED and exits 1; "
              "rerun, it resumes with 2 ranks from the last whole-epoch checkpoint to the weights of an "
              "uninterrupted 2-rank run"),
    FaultCase("torchrun-node-killed", "interruption", "kill -9 of one of two torchrun nodes (launcher and rank; "
              "`--nnodes 2`, c10d rendezvous) mid-epoch", "the other node's rank stops in one line; both launchers "
              "started again resume from the last whole-epoch checkpoint to the weights of an uninterrupted run"),
    FaultCase("rank-killed", "interruption", "kill -9 of either rank of a 2-rank torchrun run mid-epoch",
              "torchrun stops the other rank; the rerun with 2 ranks resumes from the last whole-epoch checkpoint "
              "and ends with the weights of an uninterrupted 2-rank run"),
    FaultCase("rank-dies-at-start", "interruption", "a torchrun rank killed before it joins the others",
              "the other rank stops within seconds (not the 5-minute join timeout) with one line saying why; "
              "torchrun's report names the dead rank"),
    FaultCase("two-grids-at-once", "concurrency", "two `python -m reproduce grid` on one results folder, started "
              "together", "each run is trained once: the grid that finds a run locked waits for it, then reuses it"),
    FaultCase("two-grids-on-slurm", "concurrency", "two `grid --executor submitit` on one results folder, "
              "submitted together to Slurm", "each run is trained once: the job that finds a run locked waits for "
              "it, then reuses it"),
    FaultCase("grid-run-raises", "bad input", "one run of a grid raises (here: a damaged checkpoint at its path)",
              "that run is reported FAILED with its error, every other run still trains, and the grid exits 1"),
    FaultCase("bad-grid-option", "bad input", "`grid --workers 0`, `--executor slurm`, `--only lrm`, ...",
              "exit 2: names the option and what it allows; nothing is trained"),
    FaultCase("bad-slurm-option", "bad input", "`grid --executor submitit` with a partition the cluster lacks, "
              "more CPUs than its nodes have, more time than it allows, or `--slurm-extra` setting what the grid sets",
              "exit 2 before anything is submitted: one line naming the option and what the cluster allows"),
    FaultCase("slurm-refuses-job", "bad input", "an option sbatch refuses (GPUs the partition lacks, an unknown "
              "sbatch option in `--slurm-extra`)", "exit 2: one line naming the option to change, with sbatch's "
              "reason; no traceback, nothing submitted"),
    FaultCase("no-slurm-cluster", "bad input", "`grid --executor submitit` where Slurm's commands are installed "
              "but no cluster answers", "exit 2: one line saying that sinfo fails and why; nothing submitted"),
    FaultCase("world-size-changed", "bad input", "a run checkpointed by 2 torchrun ranks, rerun by 1 process",
              "exit 2: the checkpoint was made by 2 ranks and this run has 1; resume with torchrun --nproc_per_node 2, "
              "or delete it (another world size draws other augmentation streams)"),
    FaultCase("bad-world", "bad input", "torchrun with a batch size the ranks do not divide, nccl on a CPU, or "
              "--device cuda with fewer GPUs than ranks", "exit 2 on every rank, one line (rank 0's) naming the "
              "parameter and both numbers; nothing is trained"),
    FaultCase("two-runs-at-once", "concurrency", "two `python -m reproduce run` of one run, one results folder, "
              "started together", "one trains, the other waits on the run's lock and reuses its record: "
              "one record, trained once"),
    FaultCase("unknown-parameter", "bad input", "`run --bogus 1`", "exit 2: unrecognized arguments: --bogus 1"),
    FaultCase("wrong-type", "bad input", "`run --epochs two`", "exit 2: epochs: 'two' is not an int; expected "
              "an int in [1, inf)"),
    FaultCase("value-out-of-range", "bad input", "`run --dropout 1.5`",
              "exit 2: dropout: 1.5 is out of range; expected a float in [0, 1)"),
    FaultCase("value-not-allowed", "bad input", "`run --pooling sideways`",
              "exit 2: pooling: sideways is not allowed; expected one of overlapping, non-overlapping"),
    FaultCase("unknown-model", "bad input", "`run --model vgg16`", "exit 2: model: vgg16 is not allowed; "
              "expected one of the models"),
    FaultCase("unknown-dataset", "bad input", "`run --dataset imagenet`",
              "exit 2: dataset: imagenet is not allowed; expected one of the datasets"),
    FaultCase("unknown-preset", "bad input", "`run --preset huge`",
              "exit 2: preset: 'huge' is not allowed; expected one of smoke, cpu, gpu, paper"),
    FaultCase("lighting-on-greyscale", "bad input", "`run --lighting on` on Fashion-MNIST (greyscale)",
              "exit 2: lighting: on needs colour images (3 channels), this dataset has 1; expected auto or off; "
              "nothing is trained"),
    FaultCase("missing-dataset", "bad input", "Fashion-MNIST in no folder, and no network",
              "exit 2: names the folders searched and the remedies (the Debian package, the env var, a download)"),
    FaultCase("truncated-gz", "bad input", "a truncated Fashion-MNIST .gz",
              "exit 2: names the file as corrupt and how to reinstall it; no half-unpacked file is kept"),
    FaultCase("wrong-checksum", "bad input", "a CIFAR-10 archive whose MD5 is wrong",
              "exit 2: names the archive as failing torchvision's MD5 check and where to put a good copy"),
    FaultCase("corrupt-record", "bad input", "a run record cut in half",
              "the book still builds and names the file as unreadable; the claim says failed (unreadable "
              "record); the rerun trains the run again"),
    FaultCase("unwritable-results", "bad input", "`--results-dir` that cannot be created",
              "exit 2: results_dir: names the folder and the reason, before any training"),
    FaultCase("disk-full", "bad input", "no space left on the device while saving a checkpoint (simulated)",
              "exit 2: cannot write (the checkpoint named): No space left on device; the last whole-epoch checkpoint is kept"),
    FaultCase("foreign-checkpoint", "bad input", "a checkpoint of another config at this run's path",
              "exit 2: refusing to resume from it, naming both config hashes"),
    FaultCase("nan-divergence", "bad input", "a learning rate that makes the loss NaN",
              "the run is recorded as diverged; the other runs of the ablation still train; the claim names "
              "the diverged run"),
    FaultCase("stale-code", "staleness", "training code changed after the runs",
              "the claims say stale; the rerun moves the stale records to results/stale/ and trains those runs "
              "again, reusing nothing stale"),
    FaultCase("changed-default", "staleness", "a parameter's default changed after the runs",
              "the claims say stale, naming the parameter, old and new value; the rerun trains only the "
              "runs whose config changed"),
    FaultCase("analysis-other-weights", "safety", "a final checkpoint replaced by other weights before the 10-crop "
              "and neighbour analysis", "refused: the checkpoint does not hold the weights its record names (the "
              "digests differ); no measure is taken from it"),
    FaultCase("pickle-checkpoint", "safety", "a checkpoint whose unpickling would run code",
              "exit 2: refused (torch.load with weights_only=True); the code is never executed"),
    FaultCase("path-escape", "safety", "a model name with ../ reaching the run id",
              "the run id keeps only letters, digits, '_', '.', '-': its files stay under results/"),
    FaultCase("no-eval", "safety", "parameter strings and records that look like code",
              "parsed as data (int, float, str, JSON), never evaluated: the package has no eval, exec or pickle.load"),
)
