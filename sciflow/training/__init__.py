"""Training glue: Lightning module, EMA, atomic checkpoints, run directories (train/resume/evaluate/sample)."""
from sciflow.training.checkpoint import AtomicCheckpointIO, atomic_torch_save
from sciflow.training.fit import fit
from sciflow.training.run import TrainResult, evaluate_flow, evaluate_run, load_run, sample_run, train

__all__ = ["fit", "AtomicCheckpointIO", "atomic_torch_save", "TrainResult", "train", "load_run",
           "evaluate_run", "evaluate_flow", "sample_run"]
