"""The `contextual-targeting` command: upload data, watch runs, list segments, clean up Personalize."""
