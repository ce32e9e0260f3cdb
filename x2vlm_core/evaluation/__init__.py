"""Evaluation: the papers' metrics (retrieval, VQA accuracy, captioning scores, grounding), the
per-language results of multilingual tasks, the HTML report, and ``run.run_evaluation``."""
