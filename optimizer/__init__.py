"""Scheduling policies for split federated LoRA rounds: the policy interface and its registry, the
Lyapunov MIP (Gurobi or HiGHS), a fast Lagrangian solver, baselines, the run's energy queues and
history, and convergence-bound weights."""

from optimizer.convergence import partial_participation_phi, round_weight
from optimizer.exact import ExactSolver
from optimizer.history import History
from optimizer.inputs import RoundInputs
from optimizer.lagrangian import load_kernels, solve_lagrangian
from optimizer.plan import Plan, empty_plan, make_plan
from optimizer.policies import POLICIES, LyapunovConfig, LyapunovFastPolicy, LyapunovPolicy
from optimizer.policy import NoKnobs, Policy, PolicyContext
from optimizer.problem import RoundProblem
from optimizer.queues import VirtualQueues
from optimizer.registry import build_policy, knobs_of, make_policy, policy_class
from optimizer.scheduler import Scheduler

__all__ = [
    "POLICIES",
    "ExactSolver",
    "History",
    "LyapunovConfig",
    "LyapunovFastPolicy",
    "LyapunovPolicy",
    "NoKnobs",
    "Plan",
    "Policy",
    "PolicyContext",
    "RoundInputs",
    "RoundProblem",
    "Scheduler",
    "VirtualQueues",
    "build_policy",
    "empty_plan",
    "knobs_of",
    "load_kernels",
    "make_plan",
    "make_policy",
    "partial_participation_phi",
    "policy_class",
    "round_weight",
    "solve_lagrangian",
]
