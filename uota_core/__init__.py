"""uota host engine: config, manifests, protocol clients, transports and the virtual board."""

__version__ = "0.1.0"
