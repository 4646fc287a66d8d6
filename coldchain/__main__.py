"""`python -m coldchain`: the library's command line (`inspect FILE`; see `coldchain.cli`)."""

import sys

from coldchain.cli import main

if __name__ == "__main__":  # imported as a module (the boundary test does), it runs nothing
    sys.exit(main())
