"""Re-signs Custody's directory SAS tokens with the Python SDK's own signer (azure-storage-blob,
which azure-storage-file-datalake's generate_directory_sas uses) and prints, per token, the query
parameters where the two differ ({} when identical, signature included).

stdin: {"account": ..., "key": ..., "cases": [{"token": ..., "container": ..., "directory": ..., "kw": {...}}]}
"""

import json
import sys
import urllib.parse

from azure.storage.blob._shared_access_signature import BlobSharedAccessSignature

req = json.load(sys.stdin)
out = []
for case in req["cases"]:
    ours = dict(urllib.parse.parse_qsl(case["token"]))
    signer = BlobSharedAccessSignature(req["account"], account_key=req["key"])
    signer.x_ms_version = ours["sv"]  # the same service version, so the same string-to-sign layout
    theirs = dict(
        urllib.parse.parse_qsl(
            signer.generate_blob(case["container"], case["directory"], is_directory=True, sdd=int(ours["sdd"]), **case["kw"])
        )
    )
    out.append({k: [ours.get(k), theirs.get(k)] for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)})
print(json.dumps(out))
