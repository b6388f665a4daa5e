import sys

from symgrid.grid.cli import main

sys.exit(main())
