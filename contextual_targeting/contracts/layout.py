"""The bucket layout every component agrees on (key prefixes, no trailing wildcards)."""

TRAIN_PREFIX = "train/"
"""`train/<dataset-group>/<dataset-group>_config.json` and `{interactions,items,users}.csv`."""

BATCH_PREFIX = "batch/"
"""`batch/<dataset-group>/<solution>/job_config.json` in, `.../<job-name>/<input>.out` out."""

SEGMENTS_PREFIX = "segments/"
"""`segments/<dataset-group>/<job>/<segment>.csv` plus the job's manifest."""

PINPOINT_IMPORT_PREFIX = "pinpoint/"
"""Segment-import bucket: any file created here becomes a Pinpoint import."""
