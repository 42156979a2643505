"""The embedded default, ``r1omni demo``: the paper's whole pipeline on the generated benchmark.

``config.py`` holds what a run decides (``DemoConfig``); ``stages.py`` the training stages and the
starting points every recipe shares; ``pipeline.py`` runs the stages top to bottom (benchmark, base,
cold start, label SFT, GRPO, evaluation, attribution, balance); ``stats.py`` the paired statistics;
``report.py`` turns their results into ``report.md`` and the plots;
``study.py`` is ``r1omni demo --study budget`` (RLVR against label SFT over training budgets and
seeds); ``rl_vs_sft.py`` the pre-registered study ``--study rl-vs-sft``, ``rule.py`` its decision rule and
``rl_vs_sft_report.py`` its ``summary.md`` and plot (written again from ``results.json`` alone).
An application over every layer of the package: nothing below imports it.
"""

from r1omni.demo.config import VARIANTS, DemoConfig, StageBudget
from r1omni.demo.pipeline import run_demo
from r1omni.demo.rl_vs_sft import RlVsSftConfig, run_rl_vs_sft_study
from r1omni.demo.study import StudyConfig, run_budget_study

__all__ = ["DemoConfig", "StageBudget", "run_demo", "VARIANTS", "StudyConfig", "run_budget_study", "RlVsSftConfig",
           "run_rl_vs_sft_study"]
