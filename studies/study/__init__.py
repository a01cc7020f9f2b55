"""What a study is and where it lives: the TOML spec, its sampler and pruner, the storage that
holds the study and the spec recorded in it.
"""
