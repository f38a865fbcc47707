"""What a job does with a Custody SAS, through the official Python SDK (azure-storage-blob).

Reads AZURE_STORAGE_ACCOUNT_URL and AZURE_STORAGE_SAS_TOKEN (as `custody run --creds` exports
them), tries each operation named on the command line and prints one JSON line of outcomes:
"ok:<detail>" or "denied:<HTTP status>". Operations: list:<container>, read:<container>/<blob>,
write:<container>/<blob>.
"""

import json
import os
import sys

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient

service = BlobServiceClient(
    account_url=os.environ["AZURE_STORAGE_ACCOUNT_URL"],
    credential=os.environ["AZURE_STORAGE_SAS_TOKEN"],
    retry_total=0,
)
out = {}
for op in sys.argv[1:]:
    kind, _, target = op.partition(":")
    container, _, blob = target.partition("/")
    try:
        c = service.get_container_client(container)
        if kind == "list":
            out[op] = "ok:" + ",".join(sorted(b.name for b in c.list_blobs()))
        elif kind == "read":
            out[op] = "ok:" + c.download_blob(blob).readall().decode()
        elif kind == "write":
            c.upload_blob(blob, b"written by python", overwrite=True)
            out[op] = "ok:written"
    except HttpResponseError as e:
        out[op] = f"denied:{e.status_code}"
print(json.dumps(out))
