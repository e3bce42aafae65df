"""Methods: the plugin contract (`methods/<name>/method.yaml` + a class), discovery and runner."""
