import sys

from ansim.cli import main

sys.exit(main())
