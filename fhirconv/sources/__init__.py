"""Readers: one per input format, each turning records into the normalized `Trial`.

Every reader exposes `read_text(text: str, file: str) -> Iterator[Trial | RecordError]`: a bad
record is yielded as a `RecordError` (naming file, record and field) so a batch never loses the
good records around it.
"""
