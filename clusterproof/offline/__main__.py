import sys

from clusterproof.offline.build import main

sys.exit(main(sys.argv[1:]))
