"""Miaohui (秒回): instant-reply emotional support platform."""

__version__ = "0.1.0"
