import sys

from .cli import stack_main

sys.exit(stack_main())
