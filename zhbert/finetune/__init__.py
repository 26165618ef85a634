"""Fine-tuning on CLUE-style tasks: the task registry and readers (tasks), the task kinds (kinds: head, labels,
decoding, score and submission of classification, pair, token and span tasks), inputs for the three embedding
kinds (encode), metrics, transfer modes (modes), the loop and its outputs (run), the bundled demo tasks
(bundled). Entry points: ``zhbert finetune`` and ``zhbert.finetune.run.finetune``."""
