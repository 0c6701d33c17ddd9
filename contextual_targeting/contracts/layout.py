"""The bucket layout every component agrees on (key prefixes, no trailing wildcards)."""

TRAIN_PREFIX = "train/"
"""`train/<dataset-group>/<dataset-group>_config.json` and `{interactions,items,users}.csv`."""

BATCH_PREFIX = "batch/"
"""`batch/<dataset-group>/<solution>/job_config.json` in, `.../<job-name>/<input>.out` out."""

SEGMENTS_PREFIX = "segments/"
"""`segments/<dataset-group>/<job>/<segment>.csv` plus the job's manifest."""

PINPOINT_IMPORT_PREFIX = "pinpoint/"
"""Segment-import bucket: any file created here becomes a Pinpoint import."""

TRAINING_STATE_PREFIX = "state/training/"
"""`state/training/<dataset-group>/last-success.json`: what the last successful training run trained on."""

EXPIRY_TAG_KEY = "contextual-targeting-retention"
EXPIRY_TAG_VALUE = "expire"
"""Objects tagged `contextual-targeting-retention=expire` are deleted by the data bucket's lifecycle once they
are `run_output_retention` old: job outputs and segment folders of superseded runs (tagged by the split
function when a newer run of the same job is split), the destinations' per-run files. Untagged objects,
the latest run's included, never expire."""
