import sys

from ssvoip.cli import main

sys.exit(main())
