"""fedmarket: a federated-learning marketplace on Ethereum."""

__version__ = "0.1.0"
