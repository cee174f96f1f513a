"""Schema v3: street segments, their grade history, incidents for grading."""

SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS segments (
    segment_id  TEXT PRIMARY KEY
);
"""
