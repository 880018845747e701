"""The `labsky demo` job: simulated lab, real scans, a real catalog."""

from labsky.demo.job import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
