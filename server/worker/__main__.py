"""``python -m server.worker CONFIG_JSON FD FRONT_PID RUNNING_FD``: how the front starts a worker."""

from server.worker.main import main

main()
