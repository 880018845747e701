# IPython runs this file at startup: `ipython --profile-dir=profiles/example-lab`
# or `labsky shell example-lab`. Everything else lives in labsky.session.
from labsky.ipython import start_in_ipython

start_in_ipython()
