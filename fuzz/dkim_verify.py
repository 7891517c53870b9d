"""dkimpy as a long-lived verifier for the `dkim` fuzz target: reads `<length>\n<message>`
records on stdin, answers `pass` or `fail <reason>` per line. argv[1] is the TXT record."""
import sys

import dkim

record = sys.argv[1].encode()
stdin, stdout = sys.stdin.buffer, sys.stdout
while True:
    line = stdin.readline()
    if not line:
        break
    message = stdin.read(int(line))
    try:
        ok = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
        reason = "" if ok else "signature"
    except Exception as error:  # noqa: BLE001 - any failure is a failed verification
        ok, reason = False, repr(error)
    stdout.write("pass\n" if ok else f"fail {reason}\n")
    stdout.flush()
