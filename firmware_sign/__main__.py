"""Run ``python -m firmware_sign`` as ``firmware-sign``."""

import sys

from firmware_sign.cli import main

sys.exit(main())
