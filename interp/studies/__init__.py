"""The studies: one package each, ``interp/studies/<name>/``, holding everything that is that study.

Every package exposes ``STUDY`` (:class:`interp.study.Study`): its settings dataclass, ``cells``
(the work, as :class:`interp.executor.Cell` s run by the executor with derived cache keys),
``analyse`` and ``report`` (text, tables, figures and metrics from the results alone). Inside a
package, ``core.py`` holds the study's library calls (what one cell computes, its analysis),
``study.py`` the protocol functions and the report, ``figures.py`` its figures (generic pieces
in :mod:`interp.plots`).

| package | seed | what one cell computes |
|---|---|---|
| ``demo`` | — | clean runs, logit lens and head patching on one model |
| ``head_patching`` | IOI | clean runs; exact head / component / position patching; attribution |
| ``function_vectors`` | 001 §4 | :func:`~interp.studies.function_vectors.core.task_study` per model × task |
| ``fv_transfer`` | 000 | :func:`~interp.studies.fv_transfer.core.task_transfer` per model × extraction × task |
| ``dola`` | 001 §3 | a chunk of TruthfulQA / FACTOR items scored for every bucket × α; the lens |
| ``caa_behaviors`` | 003 | :func:`~interp.studies.caa_behaviors.core.behavior_sweep` per model × behaviour |
| ``prompt_pairs`` | 002 §3.2 | the model's SAE; then one dataset's adapters × sizes × draws |
| ``correctness_steering`` | 004 | :func:`~interp.studies.correctness_steering.core.correctness_study` per model |
| ``toy_steering`` | 002 §3.1 | training the toy MLP; then one (N, repeat) steering cell or dose sweep |
"""
