from tests.examples.dailyfeed_env import dailyfeed

__all__ = ["dailyfeed"]
