"""``python -m sg3keras.cli``: the ``sg3keras`` command."""

import sys

from sg3keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
