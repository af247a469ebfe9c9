import sys

from safelora_lite.cli import main

sys.exit(main())
