"""The foundation: errors, the plugin registries, declared parameters, plugin loading, the cache
folder, the device and how YAML is read. Imports nothing else of prunebench."""
