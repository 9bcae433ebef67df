"""Each study of ``experiments/`` as library calls: settings (a dataclass the experiment's
config extends), the computation per cell (model × task / behaviour / dataset) returning a typed
result, and the analysis of that result. Experiments add the run folder and the report text.

| module | seed | cell |
|---|---|---|
| :mod:`~interp.studies.caa_behaviors` | 003 | :func:`behavior_sweep` → :class:`BehaviorSweep`, :func:`summarize` |
| :mod:`~interp.studies.fv_transfer` | 000 | :func:`task_transfer` → :class:`TransferResult` (analysis: :mod:`interp.transfer`) |
| :mod:`~interp.studies.prompt_pairs` | 002 §3.2 | :func:`dataset_study` → :class:`PromptPairsResult` |
| :mod:`~interp.studies.function_vectors` | 001 §4 | :func:`task_study` → :class:`FVTaskResult`, :func:`recovery_summary` |
| :mod:`~interp.studies.correctness` | 004 | :func:`correctness_study` → :class:`CorrectnessResult`, :func:`alpha_tests` |
| :mod:`~interp.studies.dola` | 001 §3 | :func:`score_items`, :func:`per_item_metrics`, :func:`bucket_diagnostics`, :func:`lens_and_apathy` |
| :mod:`~interp.studies.head_patching` | IOI | :func:`clean_runs` → :class:`CleanRuns`, :func:`attribution_all_sites`, :func:`agreement` |

The toy steering study's cell is :mod:`interp.toy.study`.
"""
