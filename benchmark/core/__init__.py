"""The foundation: errors, the plugin registries, declared parameters, plugin loading, the cache
folder and the device. Imports nothing else of prunebench."""
