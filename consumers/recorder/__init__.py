"""The recorder and everything that reads what it writes (`python -m tickmesh.consumers.recorder`).

    recorder    the process: the bus in, segments out, the gap-fill service answered
    recording   the file format: segments of framed, checksummed records, written and read (pure)
    journal     the writing side: batches, rotation, a failing disk
    archive     the gap-fill service's side: the messages a subscriber missed, found in the
                recording (the client side is bus.gapfill)
    playback    `tickmesh replay`: a recording published back onto a bus
    export      `tickmesh export`: a recording as Parquet tables

`main` and `Settings` are the recorder's, loaded on first use (consumers.process_attributes).
"""

from tickmesh.consumers import process_attributes

__getattr__ = process_attributes(__name__, f"{__name__}.recorder")
