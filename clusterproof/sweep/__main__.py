import sys

from clusterproof.sweep.cli import main

sys.exit(main())
