"""The local engine: moto's Step Functions interpreter plus what a local run needs.

Lambda code lives in ``functions/`` (the folder SAM packages); the engine runs it in-process,
so that folder is importable the way the Lambda runtime sees it.
"""

import sys
from pathlib import Path

_FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions")
if _FUNCTIONS not in sys.path:
    sys.path.insert(0, _FUNCTIONS)

from opsflow.engine import models as _models  # noqa: E402

_models.install()
