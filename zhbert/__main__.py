"""``python -m zhbert``: what launchers run (``deepspeed --module zhbert …``, ``torchrun -m zhbert …``)."""

import sys

from zhbert.cli import main

sys.exit(main())
