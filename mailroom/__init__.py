"""mhss-mailroom: sends AtW MHSS reports to DWP, reads DWP's replies, runs the clocks, escalates."""

__version__ = "0.1.0"
