#!/usr/bin/env python3
"""A TCP relay for one chaos host, in its namespace, between the host and its dependencies:
this kernel has no `sch_netem`, so delay and loss are made here. Each `LPORT=HOST:PORT`
argument listens on 127.0.0.1:LPORT and forwards to HOST:PORT. The mode is read from the
control file every 200 ms:

    ok             forward as is
    delay MS       hold every chunk MS milliseconds, each way
    loss P         with probability P a chunk waits 1 s, as a lost segment's retransmission
                   does (a TCP stream cannot lose bytes; it stalls)
"""
import asyncio
import random
import sys

MODE = ["ok"]


async def watch(path):
    while True:
        try:
            with open(path) as f:
                MODE[0] = f.read().strip() or "ok"
        except OSError:
            MODE[0] = "ok"
        await asyncio.sleep(0.2)


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            mode = MODE[0].split()
            if mode[0] == "delay":
                await asyncio.sleep(int(mode[1]) / 1000)
            elif mode[0] == "loss" and random.random() < float(mode[1]):
                await asyncio.sleep(1.0)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def forwarder(host, port):
    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
    return handle


async def main():
    control = sys.argv[1]
    servers = []
    for spec in sys.argv[2:]:
        lport, target = spec.split("=")
        host, port = target.rsplit(":", 1)
        servers.append(await asyncio.start_server(forwarder(host, int(port)), "127.0.0.1",
                                                  int(lport)))
    print("ready", flush=True)
    await watch(control)


if __name__ == "__main__":
    asyncio.run(main())
