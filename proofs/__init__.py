"""Z3 obligations over the spec's own definitions (one module per area).

The spec's arithmetic (``spec.buddy.find_buddy_pfn``, ``spec.watermark``) is written to run on
Python ints and Z3 terms alike, so that obligations check the spec's code rather than a
transcription of it. The obligations themselves, their manifest and ``mmspec prove`` are the
subject of the proofs issue; this package is their home.
"""
