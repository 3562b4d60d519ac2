"""Starting and stopping a throwaway `postern serve` for the flood benchmarks: loopback ports
chosen by the kernel, read back from what `serve` prints, in a temporary directory."""

import os
import resource
import shutil
import subprocess
import tempfile
import time


def start_server(binary, prefix, submissions=False, log_level="warn", nofile=None):
    """Starts `postern serve` on loopback ports (port 25's service, the console, and port 465's
    when `submissions`); returns (process, {name: (host, port)}, dir). `nofile` caps its
    descriptors."""
    work = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(work, "postern.toml"), "w") as config:
        config.write(
            'hostname = "bench.example.test"\n'
            'data_dir = "data"\n'
            "[smtp]\n"
            'listen = ["127.0.0.1:0"]\n'
            "submission = []\n"
            + ('submissions = ["127.0.0.1:0"]\n' if submissions else "submissions = []\n")
            + "[console]\n"
            'listen = ["127.0.0.1:0"]\n'
            "[log]\n"
            'format = "json"\n'
            f'level = "{log_level}"\n'
        )

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    log = open(os.path.join(work, "serve.log"), "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERN_")}
    proc = subprocess.Popen(
        [os.path.abspath(binary), "--config", os.path.join(work, "postern.toml"), "serve"],
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        preexec_fn=limit,
        env=env,
        text=True,
    )
    addrs = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"serve exited early; see {work}/serve.log")
        words = line.split()
        if len(words) == 2 and words[0] in ("smtp", "submissions", "console"):
            host, port = words[1].rsplit(":", 1)
            addrs[words[0]] = (host, int(port))
        if line.startswith("ready"):
            break
    else:
        raise RuntimeError("serve was not ready within 30 s")
    return proc, addrs, work


def stop_server(proc, work):
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(work, ignore_errors=True)
