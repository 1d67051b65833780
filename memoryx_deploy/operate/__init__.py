"""Stage 4, the running stack: status, container logs, images and digests on the hosts, smoke
runs, the benchmark, and ansible-runner's events."""
