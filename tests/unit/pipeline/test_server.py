"""LocalTiled's lifetime: closing it removes its exit hook."""

import gc
import weakref

from labsky.pipeline.server import LocalTiled


def test_a_closed_server_leaves_no_exit_hook_holding_it(tmp_path):
    server = LocalTiled(tmp_path, wait=False)
    assert server.alive()
    server.close()
    assert not server.alive()
    server._output.join(30)  # its log thread ends with the server's output
    gone = weakref.ref(server)
    del server
    gc.collect()
    assert gone() is None  # atexit held it (and its process handle) until exit
