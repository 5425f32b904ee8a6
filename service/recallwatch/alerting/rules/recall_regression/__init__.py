"""The ``recall_regression`` rule: is this checkpoint regressed? Everything that answers it.

- ``segments``: mining segments (a mining change starts one) and the baseline a checkpoint is
  compared with (``choose_baseline``: previous mining config, same mining config, or pinned);
- ``level``: the decision, the level test: the post-change level against the pre-change level
  with query churn and checkpoint-to-checkpoint variance (``decide_level``, ``LevelVerdict``);
- ``paired``: the paired test of two checkpoints (query churn only), the rule's earlier decision,
  kept for its measured numbers and the simulation;
- ``variance``: the checkpoint-variance history of other runs on the same held-out set
  (``PastVariance``; the SQL is ``store.variance``);
- ``alerts``: what a firing alert and a resolution say (texts, evidence, resolution);
- ``rule``: the registered ``RecallRegression`` rule: reads the run's history and the store,
  decides with the above (confirmation, hysteresis, older baselines), records verdicts.

``segments``, ``level``, ``paired`` and ``alerts`` are pure; ``variance`` and ``rule`` read the
store. The rules package imports ``rule`` to register it (``alerting.rules``).
"""
