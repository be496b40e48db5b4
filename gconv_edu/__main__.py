"""``python -m gconv_edu`` is the ``gconv-edu`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
