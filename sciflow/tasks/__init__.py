"""Built-in tasks (config-driven problems) of the core: toy 2-D data, data on the Earth, ..."""
