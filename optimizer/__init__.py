"""Scheduling policies for split federated LoRA rounds: the Lyapunov MIP (Gurobi or HiGHS), a fast
Lagrangian solver, baselines, virtual energy queues and convergence-bound weights."""

from optimizer.convergence import partial_participation_phi, round_weight
from optimizer.exact import ExactSolver
from optimizer.inputs import RoundInputs
from optimizer.lagrangian import load_kernels, solve_lagrangian
from optimizer.plan import Plan
from optimizer.policies import POLICIES, LyapunovPolicy, Policy, make_policy
from optimizer.problem import RoundProblem
from optimizer.queued_policy import QueuedPolicy
from optimizer.queues import VirtualQueues

__all__ = [
    "POLICIES",
    "ExactSolver",
    "LyapunovPolicy",
    "Plan",
    "Policy",
    "QueuedPolicy",
    "RoundInputs",
    "RoundProblem",
    "VirtualQueues",
    "load_kernels",
    "make_policy",
    "partial_participation_phi",
    "round_weight",
    "solve_lagrangian",
]
