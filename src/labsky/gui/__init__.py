"""`labsky gui`: the lab cockpit, one browser page that runs the lab.

A client of `labsky daemon` (ADR 12): `server` attaches to the profile's
daemon or starts one and serves `app` (FastAPI); `hub` holds the one
connection to the daemon that every page shares; `plans` makes the plan
forms; `runs` is the run browser over Tiled; `static/` is the page (ES
modules, no build step, uPlot vendored).
"""
