"""The batch scorer as spark-submit's application file (spark-submit runs a file, not a
module): ``spark-submit --py-files project.zip deploy/spark/submit.py --engine spark
--model housing --input ... --output ...``; see docs/SPARK.md."""

import sys

from service.batch.cli import main

if __name__ == "__main__":
    sys.exit(main())
