"""Write and read one object through Airflow's ObjectStoragePath on s3:// (run inside the installed venv).

Usage: python s3_roundtrip.py s3://bucket/key [conn_id]. Prints one JSON line; exits non-zero on failure.
The connection (default ``aws_default``) says where S3 is, e.g. an ``endpoint_url`` in its extra.
"""

from __future__ import annotations

import json
import sys

from airflow.sdk import ObjectStoragePath

uri, conn_id = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "aws_default")
path = ObjectStoragePath(uri, conn_id=conn_id)
path.fs.mkdir(path.bucket)  # create the bucket (an existing one is fine)
path.write_text("written through ObjectStoragePath")
print(json.dumps({"uri": uri, "read": path.read_text(), "exists": path.exists()}))
