"""The foundation: errors, the plugin registries, declared parameters, plugin loading, the cache
folder, the device, how YAML is read and data files' content digests. Imports nothing else of prunebench."""
