import sys

from opsflow.cli import main

sys.exit(main())
