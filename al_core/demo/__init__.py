"""The offline demo: synthetic long-tailed road scenes, a real CPU-trained baseline, one command."""

from al_core.demo.build import DemoReport, build_demo

__all__ = ["DemoReport", "build_demo"]
