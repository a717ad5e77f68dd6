"""Graph specs, the Python builder, and (for TOML) the torchpipe-dialect loader."""
