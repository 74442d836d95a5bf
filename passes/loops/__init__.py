"""Loop-nest emission of the bnn ops, used by ``lower-bnn-to-loops``."""
