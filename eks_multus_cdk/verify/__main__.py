import sys

from eks_multus_cdk.verify.cli import main

sys.exit(main())
