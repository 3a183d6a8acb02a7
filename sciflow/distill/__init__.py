"""Distillation of a trained flow into a one-step sampler (conditional IMLE)."""
from sciflow.distill.imle import (euler_unrolled, group_distances, imle_loss, linear_annealing, one_step,
                                  repeat_groups)

__all__ = ["one_step", "euler_unrolled", "imle_loss", "group_distances", "repeat_groups", "linear_annealing"]
